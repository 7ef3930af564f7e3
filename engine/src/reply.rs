//! A reply: what [`crate::lookup`] decided for one query, as borrowed
//! pieces of the archived records (the person, the chosen qualifications,
//! the validity, the consents), before any of it is text.
//!
//! One lookup decides the semantics; two writers read the same reply:
//! [`crate::render`] writes the JSON answer straight into an output buffer
//! (what eligd sends and `elig-loader lookup` prints), and [`Reply::build`]
//! fills the wire type [`Answer`], the struct whose serde JSON the rendered
//! bytes must equal (tests, the bench's comparison and its baseline).

use smallvec::SmallVec;

use crate::answer::*;
use crate::entry::{self, Consents, Entry};
use crate::model::*;
use crate::query::{CardKey, TicketKey};
use crate::values;

/// The reply to one query (or the refusal of one).
#[derive(Debug)]
pub struct Reply<'a> {
    pub(crate) head: Head<'a>,
    pub(crate) body: Body<'a>,
}

/// What the server records of a reply (metrics, audit, bulk counts),
/// without reading its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub status: Status,
    pub validity: Option<Validity>,
    /// `ProcessingResultCode` of a refusal.
    pub code: Option<&'static str>,
}

/// The values of `MessageHeader`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub now: u64,
    pub date: u32,
    pub institution: &'a str,
    /// `ReferenceClassification` 1 (a My Number card) rather than 2.
    pub my_number: bool,
    pub generation: &'a str,
    pub delta_seq: u64,
}

// A reply lives on the stack for one request and is read in place: boxing
// its largest variant would cost an allocation a lookup.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// Answered: a validity code, the entries shown, the key's echo.
    Found { validity: Validity, list: List<'a>, echo: Option<Echo<'a>> },
    /// Refused: a query error, or a certificate that cannot be used.
    Error { code: &'static str, message: &'a str, echo: Option<&'a SearchInfo> },
    /// A delegated-ticket fetch: one unit a ticket.
    Units(Vec<Unit<'a>>),
}

/// The entries of `ResultList`.
#[derive(Debug, Default)]
pub(crate) struct List<'a> {
    pub entries: SmallVec<[Entry<'a>; 2]>,
    /// On the My Number path: the consent flags and the reference number
    /// every entry carries.
    pub mine: Option<Mine<'a>>,
}

#[derive(Debug)]
pub(crate) struct Mine<'a> {
    pub consents: Consents,
    pub reference: Option<&'a str>,
}

/// The search-info echo of a card-data query.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Echo<'a> {
    Card { key: &'a CardKey, arbitrary: Option<&'a str> },
    Ticket { key: &'a TicketKey, arbitrary: Option<&'a str> },
}

/// One `BulkConfirmUnit` of a delegated-ticket fetch: the ticket's
/// assistance entry (its numbers shown, the one ticket listed), echoed by
/// the assistance's payer and recipient and the person's birth date.
#[derive(Debug)]
pub(crate) struct Unit<'a> {
    pub entry: Entry<'a>,
    pub asst: &'a ArchivedAssistance,
    pub validity: Validity,
    pub reference: Option<&'a str>,
    pub arbitrary: Option<&'a str>,
}

impl Reply<'_> {
    pub fn facts(&self) -> Facts {
        match &self.body {
            Body::Found { validity, .. } => Facts { status: Status::Normal, validity: Some(*validity), code: None },
            Body::Error { code, .. } => Facts { status: Status::Error, validity: None, code: Some(code) },
            Body::Units(_) => Facts { status: Status::Normal, validity: None, code: None },
        }
    }

    /// Units of a delegated-ticket fetch (0 for any other reply).
    pub fn units(&self) -> usize {
        match &self.body {
            Body::Units(units) => units.len(),
            _ => 0,
        }
    }

    /// The answer as the wire struct, filled field by field (the way
    /// answers were made before they were rendered): for tests, the
    /// byte-identity comparison and the bench. eligd and `elig-loader
    /// lookup` render instead ([`Reply::render`]).
    pub fn build(&self) -> Answer {
        let mut a = Answer::default();
        let h = &mut a.message_header;
        h.process_execution_time = values::number(self.head.now);
        h.qualification_confirmation_date = values::number(self.head.date.into());
        h.medical_institution_code = Str::from(self.head.institution);
        h.reference_classification = Str::const_new(if self.head.my_number { "1" } else { "2" });
        h.segment_of_result = Str::const_new("1");
        h.character_code_identifier = Str::const_new("0");
        h.snapshot_generation = Str::from(self.head.generation);
        h.delta_sequence = values::number(self.head.delta_seq);
        let body = &mut a.message_body;
        match &self.body {
            Body::Found { validity, list, echo } => {
                body.processing_result_status = Str::const_new(Status::Normal.code());
                body.qualification_validity = Some(Str::const_new(validity.code()));
                body.result_list = Vec::with_capacity(list.entries.len());
                for e in &list.entries {
                    entry::push_entry(&mut body.result_list, |r| {
                        entry::fill(r, e);
                        if let Some(mine) = &list.mine {
                            mine.consents.fill(r);
                            r.reference_number = mine.reference.map(Str::from);
                        }
                    });
                }
                body.qualification_confirm_search_info = echo.map(|e| e.build());
            }
            Body::Error { code, message, echo } => {
                body.processing_result_status = Str::const_new(Status::Error.code());
                body.processing_result_code = Some(Str::const_new(code));
                body.processing_result_message = Some(Str::from(*message));
                body.qualification_confirm_search_info = echo.cloned();
            }
            Body::Units(units) => {
                body.processing_result_status = Str::const_new(Status::Normal.code());
                body.bulk_confirm_unit_list = units.iter().map(Unit::build).collect();
                a.count_units();
            }
        }
        a
    }
}

impl Echo<'_> {
    fn build(self) -> SearchInfo {
        match self {
            Echo::Card { key: c, arbitrary } => SearchInfo {
                insurer_number: values::insurer(&c.insurer),
                insured_card_symbol: values::text(&c.symbol),
                insured_identification_number: Some(Str::from(c.number.as_str())),
                insured_branch_number: values::text(&c.branch),
                birthdate: Some(values::number(c.birth_date.into())),
                limit_application_certificate_related_cons_flg: Some(Str::const_new(if c.limit_consent { "1" } else { "0" })),
                arbitrary_identifier: arbitrary.map(Str::from),
            },
            Echo::Ticket { key: t, arbitrary } => SearchInfo {
                insurer_number: Some(Str::from(t.payer.as_str())),
                insured_identification_number: Some(Str::from(t.recipient.as_str())),
                birthdate: Some(values::number(t.birth_date.into())),
                // A ticket query has no consent flag; real clients need one.
                limit_application_certificate_related_cons_flg: Some(Str::const_new("0")),
                arbitrary_identifier: arbitrary.map(Str::from),
                ..Default::default()
            },
        }
    }
}

impl Unit<'_> {
    fn build(&self) -> BulkConfirmUnit {
        BulkConfirmUnit {
            qualification_confirm_search_info: Some(SearchInfo {
                insurer_number: Some(Str::from(self.asst.payer_number.as_str())),
                insured_identification_number: Some(Str::from(self.asst.recipient_number.as_str())),
                birthdate: values::date(self.entry.person.birth_date.to_native()),
                limit_application_certificate_related_cons_flg: Some(Str::const_new("0")),
                arbitrary_identifier: self.arbitrary.map(Str::from),
                ..Default::default()
            }),
            processing_result_status: Str::const_new(Status::Normal.code()),
            qualification_validity: Some(Str::const_new(self.validity.code())),
            result_of_qualification_confirmation: Some({
                let mut e = ResultOfQualificationConfirmation::default();
                entry::fill(&mut e, &self.entry);
                e
            }),
            reference_number: self.reference.map(Str::from),
            ..Default::default()
        }
    }
}
