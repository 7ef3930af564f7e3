//! Answer documents: the real result message of `interface.md`, element for
//! element, plus `SnapshotGeneration` and `DeltaSequence` in the header.
//! Every value is a string; absent elements are left out of the JSON.
//! `ResultList` and the other lists are JSON arrays whose items are the
//! repeated XML element (`ResultOfQualificationConfirmation`, ...).

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    pub message_header: MessageHeader,
    pub message_body: MessageBody,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHeader {
    pub process_execution_time: String,
    pub qualification_confirmation_date: String,
    pub medical_institution_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbitrary_file_identifier: Option<String>,
    /// 1 My Number card, 2 card data (insurance card or ticket).
    pub reference_classification: String,
    /// 1 completed, 2 still processing, 9 failed.
    pub segment_of_result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// 0 UTF-8, 1 Shift_JIS.
    pub character_code_identifier: String,
    pub snapshot_generation: String,
    pub delta_sequence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_processing_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_normal_processing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_error: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MessageBody {
    /// 1 normal, 2 error.
    pub processing_result_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_message: Option<String>,
    /// 1..6, see `domain.md` section 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_validity: Option<String>,
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
    pub insurer_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_card_symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_identification_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_branch_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_application_certificate_related_cons_flg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbitrary_identifier: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct BulkConfirmUnit {
    pub qualification_confirm_search_info: SearchInfo,
    pub processing_result_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_result_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification_validity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_of_qualification_confirmation: Option<ResultOfQualificationConfirmation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_number: Option<String>,
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
        insured_card_classification: String,
        insurer_number: String,
        insured_card_symbol: String,
        insured_identification_number: String,
        insured_branch_number: String,
        personal_family_classification: String,
        insured_name: String,
        name: String,
        name_of_other: String,
        name_kana: String,
        name_of_other_kana: String,
        sex1: String,
        birthdate: String,
        address: String,
        post_number: String,
        qualification_date: String,
        disqualification_date: String,
        insured_certificate_issuance_date: String,
        insured_card_valid_date: String,
        insured_card_expiration_date: String,
        insured_partial_contribution_ratio: String,
        preschool_classification: String,
        reason_of_loss: String,
        insurer_name: String,
        elderly_recipient_certificate_info: ElderlyRecipientCertificateInfo,
        limit_application_certificate_related_cons_flg: String,
        limit_application_certificate_related_cons_time: String,
        limit_application_certificate_related_info: LimitApplicationCertificateRelatedInfo,
        specific_diseases_certificate_related_cons_flg: String,
        specific_diseases_certificate_related_cons_time: String,
        specific_diseases_certificate_list: Vec<SpecificDiseasesCertificateInfo>,
        pharmacists_info_cons_flg: String,
        pharmacists_info_cons_time: String,
        pharmacists_info_available_time: String,
        specific_health_checkups_info_cons_flg: String,
        specific_health_checkups_info_cons_time: String,
        specific_health_checkups_info_available_time: String,
        diagnosis_info_cons_flg: String,
        diagnosis_info_cons_time: String,
        diagnosis_info_available_time: String,
        operation_info_cons_flg: String,
        operation_info_cons_time: String,
        operation_info_available_time: String,
        reference_number: String,
        public_expense_result_list: Vec<MedicalTicketInfo>,
    }
}

opt_fields! {
    pub struct ElderlyRecipientCertificateInfo {
        elderly_recipient_certificate_date: String,
        elderly_recipient_valid_start_date: String,
        elderly_recipient_valid_end_date: String,
        elderly_recipient_contribution_ratio: String,
    }
}

opt_fields! {
    pub struct LimitApplicationCertificateRelatedInfo {
        limit_application_certificate_classification: String,
        limit_application_certificate_classification_flag: String,
        limit_application_certificate_date: String,
        limit_application_certificate_valid_start_date: String,
        limit_application_certificate_valid_end_date: String,
        limit_application_certificate_long_term_date: String,
    }
}

opt_fields! {
    pub struct SpecificDiseasesCertificateInfo {
        specific_diseases_disease_category: String,
        specific_diseases_certificate_date: String,
        specific_diseases_valid_start_date: String,
        specific_diseases_valid_end_date: String,
        specific_diseases_self_pay: String,
    }
}

opt_fields! {
    pub struct MedicalTicketInfo {
        ticket_type: String,
        medical_ticket_valid_date: String,
        medical_ticket_expiration_date: String,
        issue_number: String,
        medical_treatment_month: String,
        designated_medical_institution_code: String,
        designated_medical_institution_name: String,
        designated_medical_institution_flag: String,
        prescription_issuer_medical_institution_code: String,
        prescription_issuer_medical_institution_name: String,
        injury_name1: String,
        injury_name2: String,
        injury_name3: String,
        medical_treatment_type: String,
        self_pay_amount: String,
        district_contact_name: String,
        handling_contact_name: String,
        single_or_combined_use: String,
        status_of_social_insurance: String,
        consistency_flag: String,
        status_of_infecton: String,
        status_of_elderly_medical_care: String,
        status_of_prefectural_expenses: String,
        remarks1: String,
        remarks2: String,
        remarks3: String,
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

impl Answer {
    /// The validity code, if the answer carries one.
    pub fn validity(&self) -> Option<&str> {
        self.message_body.qualification_validity.as_deref()
    }

    /// Whether the body reports an error for this query.
    pub fn is_error(&self) -> bool {
        self.message_body.processing_result_status != "1"
    }
}
