//! Rendering a [`Reply`] as its JSON answer, straight from the archived
//! records into the output buffer: no answer struct, no intermediate
//! strings. The bytes are those serde writes for the wire struct
//! [`Reply::build`] fills (field order of `wire/src/answer.rs`, absent
//! fields left out, serde_json's escapes); `tests/render.rs` holds the two
//! equal.
//!
//! Kana are decoded one byte a character, dates and times formatted by
//! [`values::decimal`], packed ids and digits unpacked on the stack, an
//! address written as its two parts: each straight into the buffer.

use crate::answer::{SearchInfo, Status};
use crate::entry::{Entry, Of};
use crate::model::*;
use crate::reply::{Body, Echo, Facts, Head, List, Mine, Reply, Unit};
use crate::values;

/// `"Key":`, the key as serde names the field.
macro_rules! key {
    ($k:ident) => {
        concat!("\"", stringify!($k), "\":")
    };
}

impl Reply<'_> {
    /// The whole answer document, appended to `out` (a delegated-ticket
    /// fetch with its units inside, as `elig-loader lookup` prints it).
    pub fn render(&self, out: &mut Vec<u8>) {
        let mut w = Json::new(out);
        self.document(&mut w, true);
    }

    /// [`Reply::render`], returning the reply's [`Facts`].
    pub fn render_to(&self, out: &mut Vec<u8>) -> Facts {
        self.render(out);
        self.facts()
    }

    /// Unit `at` of a delegated-ticket fetch on its own (eligd's `Unit`
    /// frames); nothing when there is no such unit.
    pub fn render_unit(&self, at: usize, out: &mut Vec<u8>) {
        if let Body::Units(units) = &self.body {
            if let Some(u) = units.get(at) {
                let mut w = Json::new(out);
                w.out.push(b'{');
                unit(&mut w, u);
                w.out.push(b'}');
            }
        }
    }

    /// The answer without its units, their counts in the header (eligd's
    /// `Summary` frame after the `Unit` frames).
    pub fn render_summary(&self, out: &mut Vec<u8>) {
        let mut w = Json::new(out);
        self.document(&mut w, false);
    }

    fn document(&self, w: &mut Json<'_>, with_units: bool) {
        w.out.push(b'{');
        w.open(key!(MessageHeader));
        let counts = match &self.body {
            Body::Units(units) => Some(units.len()),
            _ => None,
        };
        head(w, &self.head, counts);
        w.close();
        w.open(key!(MessageBody));
        match &self.body {
            Body::Found { validity, list, echo } => {
                w.raw(key!(ProcessingResultStatus), Status::Normal.code());
                w.raw(key!(QualificationValidity), validity.code());
                if !list.entries.is_empty() {
                    w.open_list(key!(ResultList));
                    for e in &list.entries {
                        w.item();
                        entry(w, e, list);
                        w.close();
                    }
                    w.close_list();
                }
                match echo {
                    Some(Echo::Card { key: c, arbitrary }) => {
                        w.open(key!(QualificationConfirmSearchInfo));
                        match c.insurer.len() {
                            0 => {}
                            6 => w.padded(key!(InsurerNumber), values::INSURER_PAD, &c.insurer),
                            _ => w.str(key!(InsurerNumber), &c.insurer),
                        }
                        w.text(key!(InsuredCardSymbol), &c.symbol);
                        w.str(key!(InsuredIdentificationNumber), &c.number);
                        w.text(key!(InsuredBranchNumber), &c.branch);
                        w.number(key!(Birthdate), c.birth_date.into());
                        w.raw(key!(LimitApplicationCertificateRelatedConsFlg), if c.limit_consent { "1" } else { "0" });
                        w.opt(key!(ArbitraryIdentifier), *arbitrary);
                        w.close();
                    }
                    Some(Echo::Ticket { key: t, arbitrary }) => {
                        w.open(key!(QualificationConfirmSearchInfo));
                        w.str(key!(InsurerNumber), &t.payer);
                        w.str(key!(InsuredIdentificationNumber), &t.recipient);
                        w.number(key!(Birthdate), t.birth_date.into());
                        // A ticket query has no consent flag; real clients need one.
                        w.raw(key!(LimitApplicationCertificateRelatedConsFlg), "0");
                        w.opt(key!(ArbitraryIdentifier), *arbitrary);
                        w.close();
                    }
                    None => {}
                }
            }
            Body::Error { code, message, echo } => {
                w.raw(key!(ProcessingResultStatus), Status::Error.code());
                w.str(key!(ProcessingResultCode), code);
                w.str(key!(ProcessingResultMessage), message);
                if let Some(echo) = echo {
                    sent(w, echo);
                }
            }
            Body::Units(units) => {
                w.raw(key!(ProcessingResultStatus), Status::Normal.code());
                if with_units && !units.is_empty() {
                    w.open_list(key!(BulkConfirmUnitList));
                    for u in units {
                        w.item();
                        unit(w, u);
                        w.close();
                    }
                    w.close_list();
                }
            }
        }
        w.close();
        w.out.push(b'}');
    }
}

fn head(w: &mut Json<'_>, h: &Head<'_>, counts: Option<usize>) {
    w.number(key!(ProcessExecutionTime), h.now);
    w.number(key!(QualificationConfirmationDate), h.date.into());
    w.str(key!(MedicalInstitutionCode), h.institution);
    w.raw(key!(ReferenceClassification), if h.my_number { "1" } else { "2" });
    w.raw(key!(SegmentOfResult), "1");
    w.raw(key!(CharacterCodeIdentifier), "0");
    w.str(key!(SnapshotGeneration), h.generation);
    w.number(key!(DeltaSequence), h.delta_seq);
    if let Some(n) = counts {
        // Every unit of a fetch is answered normally.
        w.number(key!(NumberOfProcessingResult), n as u64);
        w.number(key!(NumberOfNormalProcessing), n as u64);
        w.raw(key!(NumberOfError), "0");
    }
}

/// A refused query's echo, as the caller sent it.
fn sent(w: &mut Json<'_>, s: &SearchInfo) {
    w.open(key!(QualificationConfirmSearchInfo));
    w.opt(key!(InsurerNumber), s.insurer_number.as_deref());
    w.opt(key!(InsuredCardSymbol), s.insured_card_symbol.as_deref());
    w.opt(key!(InsuredIdentificationNumber), s.insured_identification_number.as_deref());
    w.opt(key!(InsuredBranchNumber), s.insured_branch_number.as_deref());
    w.opt(key!(Birthdate), s.birthdate.as_deref());
    w.opt(key!(LimitApplicationCertificateRelatedConsFlg), s.limit_application_certificate_related_cons_flg.as_deref());
    w.opt(key!(ArbitraryIdentifier), s.arbitrary_identifier.as_deref());
    w.close();
}

fn unit(w: &mut Json<'_>, u: &Unit<'_>) {
    w.open(key!(QualificationConfirmSearchInfo));
    w.str(key!(InsurerNumber), &u.asst.payer_number);
    w.str(key!(InsuredIdentificationNumber), &u.asst.recipient_number);
    w.date(key!(Birthdate), u.entry.person.birth_date.to_native());
    w.raw(key!(LimitApplicationCertificateRelatedConsFlg), "0");
    w.opt(key!(ArbitraryIdentifier), u.arbitrary);
    w.close();
    w.raw(key!(ProcessingResultStatus), Status::Normal.code());
    w.raw(key!(QualificationValidity), u.validity.code());
    w.open(key!(ResultOfQualificationConfirmation));
    entry(w, &u.entry, &List::default());
    w.close();
    w.opt(key!(ReferenceNumber), u.reference);
}

/// The fields of one `ResultOfQualificationConfirmation`, in the struct's order.
fn entry(w: &mut Json<'_>, e: &Entry<'_>, list: &List<'_>) {
    let p = e.person;
    match e.of {
        Of::Insurance { ins: i, .. } => {
            w.code(key!(InsuredCardClassification), i.card_classification, 2);
            i.insurer_number.with_text(|s| match s.len() {
                0 => {}
                6 => w.padded(key!(InsurerNumber), values::INSURER_PAD, s),
                _ => w.raw(key!(InsurerNumber), s),
            });
            w.text(key!(InsuredCardSymbol), &i.card_symbol);
            w.text(key!(InsuredIdentificationNumber), &i.card_number);
            i.branch_number.with_text(|s| w.text(key!(InsuredBranchNumber), s));
            w.number(key!(PersonalFamilyClassification), i.personal_family.into());
            w.text(key!(InsuredName), &i.insured_name);
        }
        Of::Assistance { asst: a, numbers, .. } => {
            w.raw(key!(InsuredCardClassification), "A1");
            if numbers {
                w.text(key!(InsurerNumber), &a.payer_number);
                w.text(key!(InsuredIdentificationNumber), &a.recipient_number);
            }
        }
    }
    w.text(key!(Name), &p.name);
    let other = p.other_name.as_ref();
    if let Some(o) = other {
        w.text(key!(NameOfOther), &o.name);
    }
    w.kana(key!(NameKana), &p.name_kana);
    if let Some(o) = other {
        w.kana(key!(NameOfOtherKana), &o.kana);
    }
    w.number(key!(Sex1), p.sex.into());
    w.date(key!(Birthdate), p.birth_date.to_native());
    w.joined(key!(Address), &p.address.town, &p.address.rest);
    p.post_number.with_text(|s| w.text(key!(PostNumber), s));
    match e.of {
        Of::Insurance { ins: i, consent, in_force } => {
            w.date(key!(QualificationDate), i.qualification_date.to_native());
            w.date(key!(DisqualificationDate), i.disqualification_date.to_native());
            w.date(key!(InsuredCertificateIssuanceDate), i.card_issue_date.to_native());
            w.date(key!(InsuredCardValidDate), i.card_valid_from.to_native());
            w.date(key!(InsuredCardExpirationDate), i.card_valid_to.to_native());
            w.code(key!(InsuredPartialContributionRatio), i.contribution_ratio, 3);
            if i.preschool {
                w.raw(key!(PreschoolClassification), "1");
            }
            w.code(key!(ReasonOfLoss), i.reason_of_loss, 2);
            w.text(key!(InsurerName), &i.insurer_name);
            if let Some(el) = i.elderly.as_ref() {
                w.open(key!(ElderlyRecipientCertificateInfo));
                w.date(key!(ElderlyRecipientCertificateDate), el.issue_date.to_native());
                w.date(key!(ElderlyRecipientValidStartDate), el.valid_from.to_native());
                w.date(key!(ElderlyRecipientValidEndDate), el.valid_to.to_native());
                w.code(key!(ElderlyRecipientContributionRatio), el.contribution_ratio, 3);
                w.close();
            }
            w.raw(key!(LimitApplicationCertificateRelatedConsFlg), if consent.limit { "1" } else { "0" });
            consent_time(w, list.mine.as_ref(), ConsentKind::Limit, key!(LimitApplicationCertificateRelatedConsTime));
            if let (true, Some(l)) = (consent.limit && in_force, i.limit.as_ref()) {
                w.open(key!(LimitApplicationCertificateRelatedInfo));
                w.text(key!(LimitApplicationCertificateClassification), &l.classification);
                w.text(key!(LimitApplicationCertificateClassificationFlag), &l.category);
                w.date(key!(LimitApplicationCertificateDate), l.issue_date.to_native());
                w.date(key!(LimitApplicationCertificateValidStartDate), l.valid_from.to_native());
                w.date(key!(LimitApplicationCertificateValidEndDate), l.valid_to.to_native());
                w.date(key!(LimitApplicationCertificateLongTermDate), l.long_term_date.to_native());
                w.close();
            }
            consents(w, list.mine.as_ref(), consent.specific && in_force, &i.specific_diseases);
        }
        Of::Assistance { asst: a, tickets, .. } => {
            w.date(key!(QualificationDate), a.start_date.to_native());
            w.date(key!(DisqualificationDate), a.end_date.to_native());
            w.text(key!(InsurerName), &a.welfare_office);
            consent_time(w, list.mine.as_ref(), ConsentKind::Limit, key!(LimitApplicationCertificateRelatedConsTime));
            consents(w, list.mine.as_ref(), false, &[]);
            let (tickets, requester) = tickets.of(a);
            if !tickets.is_empty() {
                w.open_list(key!(PublicExpenseResultList));
                for t in tickets {
                    w.item();
                    ticket(w, t, requester);
                    w.close();
                }
                w.close_list();
            }
        }
    }
}

fn consent_time(w: &mut Json<'_>, mine: Option<&Mine<'_>>, kind: ConsentKind, key: &str) {
    if let Some(m) = mine {
        w.ts(key, m.consents.times(kind).0);
    }
}

/// From the specific-disease flag through `ReferenceNumber`: the My Number
/// path's consent flags and times, and the certificates they govern.
fn consents(w: &mut Json<'_>, mine: Option<&Mine<'_>>, specific: bool, diseases: &[ArchivedSpecificDisease]) {
    use ConsentKind::*;
    if let Some(m) = mine {
        w.raw(key!(SpecificDiseasesCertificateRelatedConsFlg), m.consents.flag(SpecificDisease));
        w.ts(key!(SpecificDiseasesCertificateRelatedConsTime), m.consents.times(SpecificDisease).0);
    }
    if specific && !diseases.is_empty() {
        w.open_list(key!(SpecificDiseasesCertificateList));
        for s in diseases {
            w.item();
            w.text(key!(SpecificDiseasesDiseaseCategory), &s.category);
            w.date(key!(SpecificDiseasesCertificateDate), s.issue_date.to_native());
            w.date(key!(SpecificDiseasesValidStartDate), s.valid_from.to_native());
            w.date(key!(SpecificDiseasesValidEndDate), s.valid_to.to_native());
            w.text(key!(SpecificDiseasesSelfPay), &s.self_pay);
            w.close();
        }
        w.close_list();
    }
    let Some(m) = mine else { return };
    let c = &m.consents;
    for (kind, [flag, time, available]) in [
        (Pharmacy, [key!(PharmacistsInfoConsFlg), key!(PharmacistsInfoConsTime), key!(PharmacistsInfoAvailableTime)]),
        (
            Checkup,
            [
                key!(SpecificHealthCheckupsInfoConsFlg),
                key!(SpecificHealthCheckupsInfoConsTime),
                key!(SpecificHealthCheckupsInfoAvailableTime),
            ],
        ),
        (Diagnosis, [key!(DiagnosisInfoConsFlg), key!(DiagnosisInfoConsTime), key!(DiagnosisInfoAvailableTime)]),
        (Operation, [key!(OperationInfoConsFlg), key!(OperationInfoConsTime), key!(OperationInfoAvailableTime)]),
    ] {
        let (at, expires) = c.times(kind);
        w.raw(flag, c.flag(kind));
        w.ts(time, at);
        w.ts(available, expires);
    }
    w.opt(key!(ReferenceNumber), m.reference);
}

fn ticket(w: &mut Json<'_>, t: &ArchivedTicket, requester: &str) {
    let dispensing = t.ticket_type.as_str() == "02";
    w.text(key!(TicketType), &t.ticket_type);
    w.date(key!(MedicalTicketValidDate), t.valid_from.to_native());
    w.date(key!(MedicalTicketExpirationDate), t.valid_to.to_native());
    w.text(key!(IssueNumber), &t.issue_number);
    w.date(key!(MedicalTreatmentMonth), t.treatment_month.to_native());
    t.institution_code.with_text(|s| w.text(key!(DesignatedMedicalInstitutionCode), s));
    w.text(key!(DesignatedMedicalInstitutionName), &t.institution_name);
    w.raw(key!(DesignatedMedicalInstitutionFlag), if t.institution_code.is(requester) { "0" } else { "1" });
    if dispensing {
        w.text(key!(PrescriptionIssuerMedicalInstitutionCode), &t.prescriber_code);
        w.text(key!(PrescriptionIssuerMedicalInstitutionName), &t.prescriber_name);
    }
    w.text(key!(InjuryName1), &t.injury_names[0]);
    w.text(key!(InjuryName2), &t.injury_names[1]);
    w.text(key!(InjuryName3), &t.injury_names[2]);
    w.text(key!(MedicalTreatmentType), &t.treatment_type);
    w.text(key!(SelfPayAmount), &t.self_pay);
    w.text(key!(DistrictContactName), &t.district_contact);
    w.text(key!(HandlingContactName), &t.handling_contact);
    w.text(key!(SingleOrCombinedUse), &t.single_or_combined);
    w.text(key!(StatusOfSocialInsurance), &t.social_insurance);
    w.text(key!(ConsistencyFlag), &t.consistency_flag);
    w.text(key!(StatusOfInfecton), &t.infectious_disease);
    w.text(key!(StatusOfElderlyMedicalCare), &t.elderly_medical_care);
    w.text(key!(StatusOfPrefecturalExpenses), &t.prefectural_expenses);
    w.text(key!(Remarks1), &t.remarks[0]);
    w.text(key!(Remarks2), &t.remarks[1]);
    w.text(key!(Remarks3), &t.remarks[2]);
}

/// A JSON object writer over the output buffer. Every value is a string;
/// one flag says whether the next field needs a comma (nesting needs no
/// stack: a closed object or list is a value, so a comma follows it).
struct Json<'o> {
    out: &'o mut Vec<u8>,
    comma: bool,
}

impl<'o> Json<'o> {
    fn new(out: &'o mut Vec<u8>) -> Json<'o> {
        // An answer is about 1.1-1.2 KB: one reservation, no regrowth.
        out.reserve(2048);
        Json { out, comma: false }
    }

    #[inline]
    fn key(&mut self, key: &str) {
        if self.comma {
            self.out.push(b',');
        }
        self.comma = true;
        self.out.extend_from_slice(key.as_bytes());
    }

    fn open(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'{');
        self.comma = false;
    }

    fn close(&mut self) {
        self.out.push(b'}');
        self.comma = true;
    }

    fn open_list(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'[');
        self.comma = false;
    }

    /// The next object of a list (closed by [`Json::close`]).
    fn item(&mut self) {
        if self.comma {
            self.out.push(b',');
        }
        self.out.push(b'{');
        self.comma = false;
    }

    fn close_list(&mut self) {
        self.out.push(b']');
        self.comma = true;
    }

    /// A value that needs no escaping (codes, digits).
    #[inline]
    fn raw(&mut self, key: &str, s: &str) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }

    #[inline]
    fn str(&mut self, key: &str, s: &str) {
        self.joined_always(key, "", s);
    }

    /// A text value; left out when empty (as `values::text`).
    #[inline]
    fn text(&mut self, key: &str, s: &str) {
        if !s.is_empty() {
            self.str(key, s);
        }
    }

    fn opt(&mut self, key: &str, s: Option<&str>) {
        if let Some(s) = s {
            self.str(key, s);
        }
    }

    /// `a` and `b` as one value; left out when both are empty.
    fn joined(&mut self, key: &str, a: &str, b: &str) {
        if !(a.is_empty() && b.is_empty()) {
            self.joined_always(key, a, b);
        }
    }

    fn joined_always(&mut self, key: &str, a: &str, b: &str) {
        self.key(key);
        self.out.push(b'"');
        escape(self.out, a);
        escape(self.out, b);
        self.out.push(b'"');
    }

    /// Digits after a fixed pad (`values::insurer`).
    fn padded(&mut self, key: &str, pad: &str, s: &str) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(pad.as_bytes());
        escape(self.out, s);
        self.out.push(b'"');
    }

    #[inline]
    fn number(&mut self, key: &str, n: u64) {
        self.raw(key, values::decimal(n, &mut [0; 20]));
    }

    /// A date; left out when 0 (as `values::date`).
    #[inline]
    fn date(&mut self, key: &str, d: u32) {
        if d != 0 {
            self.number(key, d.into());
        }
    }

    /// A timestamp; left out when 0 (as `values::ts`).
    fn ts(&mut self, key: &str, t: u64) {
        if t != 0 {
            self.number(key, t);
        }
    }

    /// A one-byte code; left out when 0 (as `values::code`).
    fn code(&mut self, key: &str, n: u8, width: usize) {
        if let Some(s) = values::code_text(n, width, &mut [0; 3]) {
            self.raw(key, s);
        }
    }

    /// A name kana, decoded as it is written; left out when empty.
    fn kana(&mut self, key: &str, k: &crate::kana::ArchivedKana) {
        if k.is_blank() {
            return;
        }
        self.key(key);
        self.out.push(b'"');
        k.write_escaped(self.out, escape);
        self.out.push(b'"');
    }
}

/// How serde_json escapes a byte: 0 not at all, `u` as `\u00XX`, else
/// backslash and this byte.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// `s` as the inside of a JSON string, escaped as serde_json escapes it
/// (non-ASCII stays UTF-8).
pub(crate) fn escape(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Most values need no escape: skip eight bytes at a time to the first
    // word that may (the byte loop was the renderer's hottest part).
    let mut clean = 0;
    for word in bytes.chunks_exact(8) {
        if may_escape(u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]])) {
            break;
        }
        clean += 8;
    }
    // The run not yet written starts at 0; escapes are sought from `clean`.
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let e = ESCAPE[usize::from(b)];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match e {
            b'u' => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]),
            short => out.extend_from_slice(&[b'\\', short]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether a word of eight bytes holds one that [`ESCAPE`] escapes (a
/// control character, `"` or `\`): the "has a byte less than n" and "has
/// a zero byte" bit tricks, exact for the question whether any does.
#[inline]
fn may_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut texts = vec![all.clone(), String::new(), "山田　太郎".into(), "ﾔﾏﾀﾞ \"q\" \\ /".into(), "\u{2028}\u{2029}\u{7f}●".into()];
        // Every byte that escapes, and some that do not, at every place in
        // and after the words the fast path skips.
        for c in (0u8..0x80).map(char::from).chain(['●', 'ｱ', '\u{ff}']) {
            for at in 0..20 {
                texts.push(format!("{}{c}{}", "ab山".repeat(at / 3) + &"x".repeat(at % 3), "yz".repeat(at % 5)));
            }
        }
        for s in &texts {
            let mut out = vec![b'"'];
            escape(&mut out, s);
            out.push(b'"');
            assert_eq!(String::from_utf8_lossy(&out), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
