//! The records of a snapshot: one [`PersonRecord`] per person, holding every
//! row of the export that belongs to that person (certificate links,
//! insurance qualifications with their attached certificates, public
//! assistance with its tickets, reference numbers, consents).
//!
//! Keeping a person's rows together means one lookup touches one contiguous
//! record, and a delta rewrites one record. Dates are `YYYYMMDD` numbers,
//! months `YYYYMM`, timestamps `YYYYMMDDHHmmss`; `0` means absent.

use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct PersonRecord {
    #[rkyv(with = crate::id::Id)]
    pub person_id: String,
    pub name: String,
    /// Archived one byte a character (`kana`): read it with `.text()`.
    #[rkyv(with = crate::kana::Kana)]
    pub name_kana: String,
    /// Rare: boxed so persons without one pay 4 bytes (a null pointer),
    /// not two strings.
    #[rkyv(with = rkyv::with::Niche)]
    pub other_name: Option<Box<OtherName>>,
    /// 1 male, 2 female, 3 unset.
    pub sex: u8,
    /// Three bytes archived (`day`), beside `sex`: read with `to_native()`.
    #[rkyv(with = crate::day::Day)]
    pub birth_date: u32,
    /// Split where the block number starts: the town part is shared by many
    /// households and interned per shard, the rest is short (`Address`).
    pub address: Address,
    #[rkyv(with = crate::digits::Post)]
    pub post_number: String,
    pub certificates: Vec<Certificate>,
    pub insurance: Vec<Insurance>,
    /// Rare lists: 4 bytes when empty (`rare`).
    #[rkyv(with = crate::rare::Rare)]
    pub assistance: Vec<Assistance>,
    #[rkyv(with = crate::rare::Rare)]
    pub reference_numbers: Vec<ReferenceNumber>,
    #[rkyv(with = crate::rare::Rare)]
    pub consents: Vec<Consent>,
}

/// An address as the town part (up to the first digit: `東京都千代田区霞が関`)
/// and the rest (`1-2-2`). Many households of a shard share a town part,
/// archived once (format 2: 16 bytes inline and the rest, often within
/// them, instead of 8 and the whole address out of line per household).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Address {
    pub town: Arc<str>,
    pub rest: String,
}

impl Address {
    pub fn new(text: &str) -> Address {
        let at = text.find(|c: char| c.is_ascii_digit()).unwrap_or(text.len());
        Address { town: Arc::from(&text[..at]), rest: text[at..].to_string() }
    }

    pub fn is_empty(&self) -> bool {
        self.town.is_empty() && self.rest.is_empty()
    }

    /// The address for an answer; `None` when empty (as `values::text`).
    pub fn text(&self) -> Option<crate::answer::Str> {
        joined(&self.town, &self.rest)
    }
}

fn joined(town: &str, rest: &str) -> Option<crate::answer::Str> {
    if town.is_empty() && rest.is_empty() {
        return None;
    }
    let mut s = crate::answer::Str::with_capacity(town.len() + rest.len());
    s.push_str(town);
    s.push_str(rest);
    Some(s)
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.town, self.rest)
    }
}

impl std::fmt::Display for ArchivedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", &*self.town, self.rest.as_str())
    }
}

impl ArchivedAddress {
    /// The address for an answer; `None` when empty (as `values::text`).
    pub fn text(&self) -> Option<crate::answer::Str> {
        joined(&self.town, &self.rest)
    }
}

/// 通称: another name and its kana.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct OtherName {
    pub name: String,
    #[rkyv(with = crate::kana::Kana)]
    pub kana: String,
}

/// A link from a My Number card's user certificate to the person.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Certificate {
    #[rkyv(with = crate::id::Id)]
    pub serial_number: String,
    #[rkyv(with = crate::id::Id)]
    pub processing_number: String,
    #[rkyv(with = crate::day::Day)]
    pub valid_from: u32,
    #[rkyv(with = crate::day::Day)]
    pub valid_to: u32,
    /// When the serial was revoked (from the revocation list), 0 if not;
    /// six bytes archived (`digits::Stamp`), so a certificate is 28 bytes.
    #[rkyv(with = crate::digits::Stamp)]
    pub revoked_at: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Insurance {
    #[rkyv(with = crate::id::Id)]
    pub qualification_id: String,
    /// Canonical: 8 digits, or 6 for National Health Insurance.
    #[rkyv(with = crate::digits::Digits)]
    pub insurer_number: String,
    pub card_symbol: String,
    pub card_number: String,
    #[rkyv(with = crate::digits::Digits)]
    pub branch_number: String,
    pub insured_name: Arc<str>,
    /// Interned per shard: thousands of insurers, archived once each.
    pub insurer_name: Arc<str>,
    // Dates of three bytes (`day`) and one-byte codes, side by side so they
    // share words (format 2: 104 -> 96 bytes a qualification).
    #[rkyv(with = crate::day::Day)]
    pub qualification_date: u32,
    #[rkyv(with = crate::day::Day)]
    pub disqualification_date: u32,
    #[rkyv(with = crate::day::Day)]
    pub card_issue_date: u32,
    #[rkyv(with = crate::day::Day)]
    pub card_valid_from: u32,
    #[rkyv(with = crate::day::Day)]
    pub card_valid_to: u32,
    /// Codes are stored as numbers (`01` → 1; 0 absent) to keep records small;
    /// answers format them back (`values::code`).
    pub card_classification: u8,
    /// 1 insured, 2 family.
    pub personal_family: u8,
    pub reason_of_loss: u8,
    /// Percent: 10, 20, 30.
    pub contribution_ratio: u8,
    pub preschool: bool,
    /// Boxed: absent for most, and an inline `Option` would cost its full
    /// size; niched, absent costs 4 bytes (a null pointer), not 8.
    #[rkyv(with = rkyv::with::Niche)]
    pub elderly: Option<Box<Elderly>>,
    #[rkyv(with = rkyv::with::Niche)]
    pub limit: Option<Box<Limit>>,
    #[rkyv(with = crate::rare::Rare)]
    pub specific_diseases: Vec<SpecificDisease>,
}

/// 高齢受給者証.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Elderly {
    pub issue_date: u32,
    pub valid_from: u32,
    pub valid_to: u32,
    pub contribution_ratio: u8,
}

/// 限度額適用認定証: disclosed only with the patient's consent.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Limit {
    pub classification: String,
    pub category: String,
    pub issue_date: u32,
    pub valid_from: u32,
    pub valid_to: u32,
    pub long_term_date: u32,
}

/// 特定疾病療養受療証.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct SpecificDisease {
    pub category: String,
    pub issue_date: u32,
    pub valid_from: u32,
    pub valid_to: u32,
    pub self_pay: String,
}

/// 医療扶助: public assistance, with the tickets issued under it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Assistance {
    #[rkyv(with = crate::id::Id)]
    pub assistance_id: String,
    pub payer_number: String,
    pub recipient_number: String,
    pub welfare_office: Arc<str>,
    pub start_date: u32,
    pub end_date: u32,
    pub tickets: Vec<Ticket>,
}

/// 医療券 / 調剤券: delegates a month of care to one institution.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Ticket {
    #[rkyv(with = crate::id::Id)]
    pub ticket_id: String,
    pub ticket_type: String,
    pub treatment_month: u32,
    pub valid_from: u32,
    pub valid_to: u32,
    pub issue_number: String,
    #[rkyv(with = crate::id::Id)]
    pub institution_code: String,
    pub institution_name: Arc<str>,
    pub treatment_type: String,
    pub self_pay: String,
    pub injury_names: [String; 3],
    pub single_or_combined: String,
    pub social_insurance: String,
    pub consistency_flag: String,
    pub infectious_disease: String,
    pub elderly_medical_care: String,
    pub prefectural_expenses: String,
    pub prescriber_code: String,
    pub prescriber_name: String,
    pub district_contact: String,
    pub handling_contact: String,
    pub remarks: [String; 3],
}

/// 照会番号: an institution's own patient id for this person.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct ReferenceNumber {
    #[rkyv(with = crate::id::Id)]
    pub institution_code: String,
    pub reference_number: String,
}

/// Consent registered at an institution's card reader.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Consent {
    #[rkyv(with = crate::id::Id)]
    pub institution_code: String,
    pub kind: ConsentKind,
    #[rkyv(with = crate::digits::Stamp)]
    pub consented_at: u64,
    #[rkyv(with = crate::digits::Stamp)]
    pub expires_at: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum ConsentKind {
    #[default]
    Pharmacy,
    Checkup,
    Diagnosis,
    Operation,
    Limit,
    SpecificDisease,
}

impl ConsentKind {
    pub const ALL: [ConsentKind; 6] = [
        ConsentKind::Pharmacy,
        ConsentKind::Checkup,
        ConsentKind::Diagnosis,
        ConsentKind::Operation,
        ConsentKind::Limit,
        ConsentKind::SpecificDisease,
    ];

    /// The name used in the export and delta files.
    pub fn name(self) -> &'static str {
        match self {
            ConsentKind::Pharmacy => "pharmacy",
            ConsentKind::Checkup => "checkup",
            ConsentKind::Diagnosis => "diagnosis",
            ConsentKind::Operation => "operation",
            ConsentKind::Limit => "limit",
            ConsentKind::SpecificDisease => "specific_disease",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentKind> {
        ConsentKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl ArchivedConsentKind {
    pub fn to_native(&self) -> ConsentKind {
        match self {
            ArchivedConsentKind::Pharmacy => ConsentKind::Pharmacy,
            ArchivedConsentKind::Checkup => ConsentKind::Checkup,
            ArchivedConsentKind::Diagnosis => ConsentKind::Diagnosis,
            ArchivedConsentKind::Operation => ConsentKind::Operation,
            ArchivedConsentKind::Limit => ConsentKind::Limit,
            ArchivedConsentKind::SpecificDisease => ConsentKind::SpecificDisease,
        }
    }
}

/// One shard file of person records. Shards keep every archive far under
/// rkyv's 2 GiB reach of 32-bit relative pointers.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
#[rkyv(derive(Debug))]
pub struct PersonShard {
    pub records: Vec<PersonRecord>,
}

/// Persons per shard: at the measured few hundred bytes a record, a shard
/// stays under a few hundred MiB. Version 2 halves version 1's 2^20, so that
/// verify, which validates each shard on a core of its own, has two shards
/// to share between the two cores already at a million persons.
pub const SHARD_PERSONS: u32 = 1 << 19;
