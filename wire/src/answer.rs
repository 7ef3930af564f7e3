//! Answer documents: the real result message of `interface.md`, element for
//! element, plus `SnapshotGeneration` and `DeltaSequence` in the header.
//! Every value is a string; absent elements are left out of the JSON.
//! `ResultList` and the other lists are JSON arrays whose items are the
//! repeated XML element (`ResultOfQualificationConfirmation`, ...).

use serde::{Deserialize, Serialize};

/// Every value of an answer. Strings of up to 24 bytes (dates, codes,
/// numbers, most names) live inline: building an answer allocates only for
/// long values such as addresses.
pub type Str = compact_str::CompactString;
pub use compact_str::ToCompactString;

/// Header and body are boxed so an `Answer` moves as two pointers: inline,
/// its ~80 optional `CompactString`s (niche in their last byte) were moved
/// byte by byte, which cost about 1 µs every time an answer was returned by
/// value (measured in the `lookup` bench, `engine/present`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    pub message_header: Box<MessageHeader>,
    pub message_body: Box<MessageBody>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHeader {
    pub process_execution_time: Str,
    pub qualification_confirmation_date: Str,
    pub medical_institution_code: Str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbitrary_file_identifier: Option<Str>,
    /// 1 My Number card, 2 card data (insurance card or ticket).
    pub reference_classification: Str,
    /// 1 completed, 2 still processing, 9 failed.
    pub segment_of_result: Str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<Str>,
    /// 0 UTF-8, 1 Shift_JIS.
    pub character_code_identifier: Str,
    pub snapshot_generation: Str,
    pub delta_sequence: Str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_processing_result: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_normal_processing: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_error: Option<Str>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MessageBody {
    /// 1 normal, 2 error.
    pub processing_result_status: Str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_code: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_message: Option<Str>,
    /// 1..6, see `domain.md` section 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_validity: Option<Str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_list: Vec<ResultOfQualificationConfirmation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_confirm_search_info: Option<SearchInfo>,
    /// Delegated-ticket fetch: one unit per ticket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bulk_confirm_unit_list: Vec<BulkConfirmUnit>,
}

/// Echo of a card-data query.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SearchInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurer_number: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_card_symbol: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_identification_number: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_branch_number: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_application_certificate_related_cons_flg: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbitrary_identifier: Option<Str>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct BulkConfirmUnit {
    /// Absent for an item that could not be read far enough to echo its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_confirm_search_info: Option<SearchInfo>,
    pub processing_result_status: Str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_code: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_message: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_validity: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_of_qualification_confirmation: Option<ResultOfQualificationConfirmation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_number: Option<Str>,
}

macro_rules! opt_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

opt_fields! {
    /// One qualification (insurance, or `A1` public assistance).
    pub struct ResultOfQualificationConfirmation {
        insured_card_classification: Str,
        insurer_number: Str,
        insured_card_symbol: Str,
        insured_identification_number: Str,
        insured_branch_number: Str,
        personal_family_classification: Str,
        insured_name: Str,
        name: Str,
        name_of_other: Str,
        name_kana: Str,
        name_of_other_kana: Str,
        sex1: Str,
        birthdate: Str,
        address: Str,
        post_number: Str,
        qualification_date: Str,
        disqualification_date: Str,
        insured_certificate_issuance_date: Str,
        insured_card_valid_date: Str,
        insured_card_expiration_date: Str,
        insured_partial_contribution_ratio: Str,
        preschool_classification: Str,
        reason_of_loss: Str,
        insurer_name: Str,
        elderly_recipient_certificate_info: ElderlyRecipientCertificateInfo,
        limit_application_certificate_related_cons_flg: Str,
        limit_application_certificate_related_cons_time: Str,
        limit_application_certificate_related_info: LimitApplicationCertificateRelatedInfo,
        specific_diseases_certificate_related_cons_flg: Str,
        specific_diseases_certificate_related_cons_time: Str,
        specific_diseases_certificate_list: Vec<SpecificDiseasesCertificateInfo>,
        pharmacists_info_cons_flg: Str,
        pharmacists_info_cons_time: Str,
        pharmacists_info_available_time: Str,
        specific_health_checkups_info_cons_flg: Str,
        specific_health_checkups_info_cons_time: Str,
        specific_health_checkups_info_available_time: Str,
        diagnosis_info_cons_flg: Str,
        diagnosis_info_cons_time: Str,
        diagnosis_info_available_time: Str,
        operation_info_cons_flg: Str,
        operation_info_cons_time: Str,
        operation_info_available_time: Str,
        reference_number: Str,
        public_expense_result_list: Vec<MedicalTicketInfo>,
    }
}

opt_fields! {
    pub struct ElderlyRecipientCertificateInfo {
        elderly_recipient_certificate_date: Str,
        elderly_recipient_valid_start_date: Str,
        elderly_recipient_valid_end_date: Str,
        elderly_recipient_contribution_ratio: Str,
    }
}

opt_fields! {
    pub struct LimitApplicationCertificateRelatedInfo {
        limit_application_certificate_classification: Str,
        limit_application_certificate_classification_flag: Str,
        limit_application_certificate_date: Str,
        limit_application_certificate_valid_start_date: Str,
        limit_application_certificate_valid_end_date: Str,
        limit_application_certificate_long_term_date: Str,
    }
}

opt_fields! {
    pub struct SpecificDiseasesCertificateInfo {
        specific_diseases_disease_category: Str,
        specific_diseases_certificate_date: Str,
        specific_diseases_valid_start_date: Str,
        specific_diseases_valid_end_date: Str,
        specific_diseases_self_pay: Str,
    }
}

opt_fields! {
    pub struct MedicalTicketInfo {
        ticket_type: Str,
        medical_ticket_valid_date: Str,
        medical_ticket_expiration_date: Str,
        issue_number: Str,
        medical_treatment_month: Str,
        designated_medical_institution_code: Str,
        designated_medical_institution_name: Str,
        designated_medical_institution_flag: Str,
        prescription_issuer_medical_institution_code: Str,
        prescription_issuer_medical_institution_name: Str,
        injury_name1: Str,
        injury_name2: Str,
        injury_name3: Str,
        medical_treatment_type: Str,
        self_pay_amount: Str,
        district_contact_name: Str,
        handling_contact_name: Str,
        single_or_combined_use: Str,
        status_of_social_insurance: Str,
        consistency_flag: Str,
        status_of_infecton: Str,
        status_of_elderly_medical_care: Str,
        status_of_prefectural_expenses: Str,
        remarks1: Str,
        remarks2: Str,
        remarks3: Str,
    }
}

/// Validity codes of the real system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    Valid = 1,
    Invalid = 2,
    InvalidNewExists = 3,
    NotFound = 4,
    SeveralMatch = 5,
    NotDelegated = 6,
}

impl Validity {
    pub const ALL: [Validity; 6] = [
        Validity::Valid,
        Validity::Invalid,
        Validity::InvalidNewExists,
        Validity::NotFound,
        Validity::SeveralMatch,
        Validity::NotDelegated,
    ];

    /// The validity of a `QualificationValidity` value, if it is one.
    pub fn from_code(code: &str) -> Option<Validity> {
        Validity::ALL.into_iter().find(|v| v.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Validity::Valid => "1",
            Validity::Invalid => "2",
            Validity::InvalidNewExists => "3",
            Validity::NotFound => "4",
            Validity::SeveralMatch => "5",
            Validity::NotDelegated => "6",
        }
    }
}

/// `ProcessingResultStatus`: whether the query was answered or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `1`: answered (the validity says what was found).
    Normal,
    /// `2`: refused; `ProcessingResultCode` says why.
    Error,
}

impl Status {
    /// The value of `ProcessingResultStatus`.
    pub fn code(self) -> &'static str {
        match self {
            Status::Normal => "1",
            Status::Error => "2",
        }
    }
}

impl Answer {
    /// The validity code, if the answer carries one.
    pub fn validity(&self) -> Option<&str> {
        self.message_body.qualification_validity.as_deref()
    }

    /// The validity, if the answer carries a known one.
    pub fn validity_code(&self) -> Option<Validity> {
        self.validity().and_then(Validity::from_code)
    }

    /// `ProcessingResultStatus`: anything but `1` is an error.
    pub fn status(&self) -> Status {
        if self.is_error() {
            Status::Error
        } else {
            Status::Normal
        }
    }

    /// Whether the body reports an error for this query.
    pub fn is_error(&self) -> bool {
        self.message_body.processing_result_status != "1"
    }

    /// Fill the bulk counts of a delegated-ticket fetch.
    pub fn count_units(&mut self) {
        let units = &self.message_body.bulk_confirm_unit_list;
        let errors = units.iter().filter(|u| u.processing_result_status != "1").count();
        self.message_header.number_of_processing_result = Some(units.len().to_compact_string());
        self.message_header.number_of_normal_processing = Some((units.len() - errors).to_compact_string());
        self.message_header.number_of_error = Some(errors.to_compact_string());
    }
}
