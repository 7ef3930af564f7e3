//! XmlMsg rendering: the real result message of interface.md.
//!
//! `render` turns an [`Answer`] into the `XmlMsg` document institutions already read
//! (`XmlMsg` > `MessageHeader` + `MessageBody`), in UTF-8 or Shift_JIS; `parse` is the inverse.
//!
//! How element order is kept: `serde_json::Value` (without the `preserve_order` feature) sorts
//! object keys, so it cannot be used to walk the answer. Instead the answer is serialised with
//! `serde_json::to_string` (serde emits struct fields in declaration order) and read back into
//! [`Node`], a small tree whose `Deserialize` keeps map entries in the order they arrive. The
//! element names and the field order therefore come from `answer.rs` alone; the only XML-specific
//! knowledge here is the table of list wrappers and their item elements ([`LISTS`]) and the names
//! of the structured elements ([`CONTAINERS`], needed by `parse` to tell an empty struct from an
//! empty string).

use std::fmt;

use elig_wire::answer::Answer;
use encoding_rs::{EncoderResult, Encoding, SHIFT_JIS, UTF_8};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// JSON list field → the element repeated inside its XML wrapper.
const LISTS: &[(&str, &str)] = &[
    ("ResultList", "ResultOfQualificationConfirmation"),
    ("PublicExpenseResultList", "MedicalTicketInfo"),
    ("SpecificDiseasesCertificateList", "SpecificDiseasesCertificateInfo"),
];

/// JSON list field → the element repeated in its parent with no wrapper: the
/// real bulk result carries `BulkConfirmUnit` elements directly under
/// `MessageBody` (`interface.md`, "What real clients require").
const UNWRAPPED: &[(&str, &str)] = &[("BulkConfirmUnitList", "BulkConfirmUnit")];

/// Elements that hold child elements (structs), as opposed to text.
const CONTAINERS: &[&str] = &[
    "XmlMsg",
    "MessageHeader",
    "MessageBody",
    "QualificationConfirmSearchInfo",
    "BulkConfirmUnit",
    "ResultOfQualificationConfirmation",
    "ElderlyRecipientCertificateInfo",
    "LimitApplicationCertificateRelatedInfo",
    "SpecificDiseasesCertificateInfo",
    "MedicalTicketInfo",
];

/// What the real system puts in place of a character it cannot represent.
const UNREPRESENTABLE: char = '●';

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("unsupported encoding '{0}' in the XML declaration")]
    UnsupportedEncoding(String),
    #[error("the document is not valid {0}")]
    Malformed(&'static str),
    #[error("XML syntax: {0}")]
    Syntax(#[from] quick_xml::Error),
    #[error("XML structure: {0}")]
    Structure(String),
    #[error("not an answer: {0}")]
    Answer(#[from] serde_json::Error),
}

fn list_item(name: &str) -> Option<&'static str> {
    LISTS.iter().find(|(list, _)| *list == name).map(|(_, item)| *item)
}

fn unwrapped_item(name: &str) -> Option<&'static str> {
    UNWRAPPED.iter().find(|(list, _)| *list == name).map(|(_, item)| *item)
}

/// The JSON list an unwrapped repeated element belongs to.
fn unwrapped_list(item: &str) -> Option<&'static str> {
    UNWRAPPED.iter().find(|(_, i)| *i == item).map(|(list, _)| *list)
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// An answer as an order-preserving tree (see the module comment).
#[derive(Debug)]
enum Node {
    Text(String),
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an object or an array")
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Node>()? {
                    fields.push(entry);
                }
                Ok(Node::Map(fields))
            }
        }
        d.deserialize_any(V)
    }
}

/// Renders `answer` as an `XmlMsg` document, UTF-8 or (with `shift_jis`) Shift_JIS.
/// `CharacterCodeIdentifier` is set to match the encoding (`0` UTF-8, `1` Shift_JIS).
pub fn render(answer: &Answer, shift_jis: bool) -> Vec<u8> {
    // Every field of an answer is a string, a struct or a list: neither step can fail.
    let json = serde_json::to_string(answer).expect("an answer always serialises");
    let mut root: Node = serde_json::from_str(&json).expect("an answer is strings, maps and lists");
    set_character_code(&mut root, if shift_jis { "1" } else { "0" });

    let label = if shift_jis { "Shift_JIS" } else { "UTF-8" };
    let mut out = format!(r#"<?xml version="1.0" encoding="{label}" standalone="no"?>"#);
    write_element(&mut out, "XmlMsg", &root);
    if shift_jis {
        encode_shift_jis(&out)
    } else {
        out.into_bytes()
    }
}

fn set_character_code(root: &mut Node, code: &str) {
    let Node::Map(sections) = root else { return };
    for (name, section) in sections {
        if let (true, Node::Map(fields)) = (name == "MessageHeader", section) {
            for (field, value) in fields {
                if field == "CharacterCodeIdentifier" {
                    *value = Node::Text(code.to_owned());
                }
            }
        }
    }
}

fn write_element(out: &mut String, name: &str, node: &Node) {
    match node {
        Node::List(items) => match (list_item(name), unwrapped_item(name)) {
            (Some(item), _) => {
                open(out, name);
                items.iter().for_each(|it| write_element(out, item, it));
                close(out, name);
            }
            (None, Some(item)) => items.iter().for_each(|it| write_element(out, item, it)),
            // Not produced by today's answer; a plain repetition is the natural XML reading.
            (None, None) => items.iter().for_each(|it| write_element(out, name, it)),
        },
        Node::Map(fields) => {
            open(out, name);
            fields.iter().for_each(|(child, value)| write_element(out, child, value));
            close(out, name);
        }
        Node::Text(text) => {
            open(out, name);
            push_escaped(out, text);
            close(out, name);
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A literal CR would be normalised away by XML parsers.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            // Other control characters cannot appear in an XML 1.0 document at all.
            c if (c as u32) < 0x20 => out.push(UNREPRESENTABLE),
            c => out.push(c),
        }
    }
}

/// Shift_JIS, with "●" for characters outside the set (encoding_rs itself would write `&#NNN;`).
fn encode_shift_jis(text: &str) -> Vec<u8> {
    let mut encoder = SHIFT_JIS.new_encoder();
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    loop {
        out.reserve(rest.len() + 16);
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(c) => {
                let substitute = jis_alias(c).unwrap_or(UNREPRESENTABLE);
                let mut buf = [0u8; 4];
                out.extend_from_slice(&SHIFT_JIS.encode(substitute.encode_utf8(&mut buf)).0);
            }
        }
    }
}

/// Characters of JIS X 0208 that the JIS mapping to Unicode gives a different code point than
/// the Windows (WHATWG) mapping encoding_rs uses: they are in Shift_JIS, so they must not
/// become "●". They come back from `parse` as the Windows code point.
fn jis_alias(c: char) -> Option<char> {
    Some(match c {
        '\u{301C}' => '\u{FF5E}', // WAVE DASH → FULLWIDTH TILDE
        '\u{2016}' => '\u{2225}', // DOUBLE VERTICAL LINE → PARALLEL TO
        '\u{2014}' => '\u{2015}', // EM DASH → HORIZONTAL BAR
        '\u{00A2}' => '\u{FFE0}', // CENT SIGN
        '\u{00A3}' => '\u{FFE1}', // POUND SIGN
        '\u{00AC}' => '\u{FFE2}', // NOT SIGN
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Parses an `XmlMsg` document (UTF-8 or any encoding its declaration names) back into an
/// [`Answer`]. `CharacterCodeIdentifier` is returned as written in the document; attributes and
/// elements an answer does not have are ignored, as the JSON form ignores unknown fields.
pub fn parse(xml: &[u8]) -> Result<Answer, XmlError> {
    let encoding = declared_encoding(xml)?;
    let (text, _, had_errors) = encoding.decode(xml);
    if had_errors {
        return Err(XmlError::Malformed(encoding.name()));
    }
    let root = parse_tree(&text)?;
    Ok(serde_json::from_value(root)?)
}

fn declared_encoding(xml: &[u8]) -> Result<&'static Encoding, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let Ok(Event::Decl(decl)) = reader.read_event_into(&mut buf) else {
        return Ok(UTF_8);
    };
    match decl.encoding() {
        None => Ok(UTF_8),
        Some(Err(e)) => Err(XmlError::Syntax(e.into())),
        Some(Ok(label)) => {
            Encoding::for_label(&label).ok_or_else(|| XmlError::UnsupportedEncoding(String::from_utf8_lossy(&label).into_owned()))
        }
    }
}

/// One open element while parsing.
struct Frame {
    name: String,
    fields: serde_json::Map<String, serde_json::Value>,
    items: Vec<serde_json::Value>,
    text: String,
    has_children: bool,
}

fn parse_tree(text: &str) -> Result<serde_json::Value, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    loop {
        let (start, end) = match reader.read_event()? {
            Event::Start(e) => (Some(element_name(&e)), false),
            Event::Empty(e) => (Some(element_name(&e)), true),
            Event::End(_) => (None, true),
            Event::Text(t) => {
                let t = t.unescape()?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(XmlError::Structure("text outside the root element".into())),
                }
                continue;
            }
            Event::CData(t) => {
                let t = t.decode().map_err(quick_xml::Error::from)?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&t),
                    None => return Err(XmlError::Structure("CDATA outside the root element".into())),
                }
                continue;
            }
            Event::Eof => break,
            _ => continue, // declaration, comments, processing instructions, doctype
        };
        if let Some(name) = start {
            if root.is_some() || (stack.is_empty() && name != "XmlMsg") {
                return Err(XmlError::Structure(format!("expected one <XmlMsg> root, found <{name}>")));
            }
            stack.push(Frame { name, fields: Default::default(), items: Vec::new(), text: String::new(), has_children: false });
        }
        if end {
            let frame = stack.pop().expect("quick-xml checks that end tags match");
            let (name, value) = finish(frame)?;
            match stack.last_mut() {
                None => root = Some(value),
                Some(parent) => attach(parent, name, value)?,
            }
        }
    }
    root.ok_or_else(|| XmlError::Structure("no <XmlMsg> element".into()))
}

/// The element's name without a namespace prefix (the input was decoded to UTF-8 already).
fn element_name(e: &quick_xml::events::BytesStart) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// Turns a closed element into its JSON value: a list, an object or a string.
fn finish(frame: Frame) -> Result<(String, serde_json::Value), XmlError> {
    let structured = list_item(&frame.name).is_some() || frame.has_children || CONTAINERS.contains(&frame.name.as_str());
    if structured && !frame.text.trim().is_empty() {
        return Err(XmlError::Structure(format!("<{}> mixes text and elements", frame.name)));
    }
    let value = if list_item(&frame.name).is_some() {
        serde_json::Value::Array(frame.items)
    } else if structured {
        serde_json::Value::Object(frame.fields)
    } else {
        serde_json::Value::String(frame.text)
    };
    Ok((frame.name, value))
}

fn attach(parent: &mut Frame, name: String, value: serde_json::Value) -> Result<(), XmlError> {
    parent.has_children = true;
    if let Some(item) = list_item(&parent.name) {
        if name != item {
            return Err(XmlError::Structure(format!("<{}> holds <{name}>, expected <{item}>", parent.name)));
        }
        parent.items.push(value);
    } else if let Some(list) = unwrapped_list(&name) {
        let items = parent.fields.entry(list).or_insert_with(|| serde_json::Value::Array(Vec::new()));
        match items {
            serde_json::Value::Array(items) => items.push(value),
            _ => return Err(XmlError::Structure(format!("<{list}> and <{name}> both in <{}>", parent.name))),
        }
    } else if parent.fields.insert(name.clone(), value).is_some() {
        return Err(XmlError::Structure(format!("<{name}> repeated in <{}>", parent.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use elig_wire::answer::*;

    fn s(v: &str) -> Option<elig_wire::answer::Str> {
        Some(v.into())
    }

    fn header(reference: &str) -> MessageHeader {
        MessageHeader {
            process_execution_time: "20261122093000".into(),
            qualification_confirmation_date: "20261122".into(),
            medical_institution_code: "1311111111".into(),
            arbitrary_file_identifier: s("file-7"),
            reference_classification: reference.into(),
            segment_of_result: "1".into(),
            character_code_identifier: "0".into(),
            snapshot_generation: "42".into(),
            delta_sequence: "17".into(),
            ..Default::default()
        }
    }

    fn body(validity: &str, result_list: Vec<ResultOfQualificationConfirmation>) -> MessageBody {
        MessageBody { processing_result_status: "1".into(), qualification_validity: s(validity), result_list, ..Default::default() }
    }

    fn insurance(name: &str, kana: &str) -> ResultOfQualificationConfirmation {
        ResultOfQualificationConfirmation {
            insured_card_classification: s("01"),
            insurer_number: s("06130488"),
            insured_card_symbol: s("12"),
            insured_identification_number: s("3456"),
            insured_branch_number: s("01"),
            personal_family_classification: s("1"),
            name: s(name),
            name_kana: s(kana),
            sex1: s("1"),
            birthdate: s("19800101"),
            address: s("東京都千代田区霞が関1-2-2 <A&B> \"棟\""),
            post_number: s("100-8916"),
            qualification_date: s("20200401"),
            insured_partial_contribution_ratio: s("030"),
            insurer_name: s("全国健康保険協会東京支部"),
            elderly_recipient_certificate_info: Some(ElderlyRecipientCertificateInfo {
                elderly_recipient_certificate_date: s("20250801"),
                elderly_recipient_valid_start_date: s("20250801"),
                elderly_recipient_valid_end_date: s("20260731"),
                elderly_recipient_contribution_ratio: s("020"),
            }),
            limit_application_certificate_related_cons_flg: s("1"),
            limit_application_certificate_related_cons_time: s("20261122092900"),
            limit_application_certificate_related_info: Some(LimitApplicationCertificateRelatedInfo {
                limit_application_certificate_classification: s("01"),
                limit_application_certificate_classification_flag: s("A03"),
                limit_application_certificate_valid_start_date: s("20260801"),
                ..Default::default()
            }),
            specific_diseases_certificate_list: Some(vec![
                SpecificDiseasesCertificateInfo {
                    specific_diseases_disease_category: s("1"),
                    specific_diseases_self_pay: s("10000"),
                    ..Default::default()
                },
                SpecificDiseasesCertificateInfo { specific_diseases_disease_category: s("2"), ..Default::default() },
            ]),
            pharmacists_info_cons_flg: s("0"),
            reference_number: s("R-001"),
            ..Default::default()
        }
    }

    fn assistance(tickets: Vec<MedicalTicketInfo>) -> ResultOfQualificationConfirmation {
        ResultOfQualificationConfirmation {
            insured_card_classification: s("A1"),
            insurer_number: s("12131015"),
            insured_identification_number: s("1234566"),
            name: s("佐藤　花子"),
            qualification_date: s("20240101"),
            insurer_name: s("千代田区福祉事務所"),
            public_expense_result_list: Some(tickets),
            ..Default::default()
        }
    }

    fn ticket(kind: &str, month: &str) -> MedicalTicketInfo {
        MedicalTicketInfo {
            ticket_type: s(kind),
            medical_ticket_valid_date: s(&format!("{month}01")),
            medical_ticket_expiration_date: s(&format!("{month}30")),
            medical_treatment_month: s(month),
            designated_medical_institution_code: s("1311111111"),
            designated_medical_institution_flag: s("0"),
            injury_name1: s("急性胃腸炎"),
            medical_treatment_type: s("02"),
            status_of_infecton: s("02"),
            remarks1: s("備考"),
            ..Default::default()
        }
    }

    fn valid_answer() -> Answer {
        let mut body = body("1", vec![insurance("山田　太郎", "ﾔﾏﾀﾞ ﾀﾛｳ")]);
        body.qualification_confirm_search_info = Some(SearchInfo {
            insurer_number: s("06130488"),
            birthdate: s("19800101"),
            arbitrary_identifier: s("patient-42"),
            ..Default::default()
        });
        Answer { message_header: Box::new(header("2")), message_body: Box::new(body) }
    }

    /// Parses `xml` back and compares it with `original`, section by section and entry by entry.
    fn assert_round_trip(xml: &[u8], original: &Answer, code: &str) {
        let back = parse(xml).expect("parse");
        assert_eq!(back.message_header.character_code_identifier, code);
        let mut expected = original.clone();
        expected.message_header.character_code_identifier = code.into();
        assert_eq!(back.message_header, expected.message_header);
        let (b, e) = (&back.message_body, &expected.message_body);
        assert_eq!(b.processing_result_status, e.processing_result_status);
        assert_eq!(b.processing_result_code, e.processing_result_code);
        assert_eq!(b.processing_result_message, e.processing_result_message);
        assert_eq!(b.qualification_validity, e.qualification_validity);
        assert_eq!(b.result_list.len(), e.result_list.len());
        for (got, want) in b.result_list.iter().zip(&e.result_list) {
            assert_eq!(got, want);
        }
        assert_eq!(b.qualification_confirm_search_info, e.qualification_confirm_search_info);
        assert_eq!(b.bulk_confirm_unit_list, e.bulk_confirm_unit_list);
        assert_eq!(back, expected);
    }

    fn text(xml: &[u8]) -> &str {
        std::str::from_utf8(xml).unwrap()
    }

    #[test]
    fn valid_insurance_entry() {
        let answer = valid_answer();
        let xml = render(&answer, false);
        let t = text(&xml);
        assert!(t.starts_with(concat!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#,
            "<XmlMsg><MessageHeader><ProcessExecutionTime>20261122093000</ProcessExecutionTime>"
        )));
        assert!(t.ends_with("</MessageBody></XmlMsg>"));
        assert!(t.contains("<CharacterCodeIdentifier>0</CharacterCodeIdentifier><SnapshotGeneration>42</SnapshotGeneration>"));
        assert!(t.contains("</MessageHeader><MessageBody><ProcessingResultStatus>1</ProcessingResultStatus><QualificationValidity>1</QualificationValidity>"));
        assert!(t.contains(concat!(
            "<ResultList><ResultOfQualificationConfirmation><InsuredCardClassification>01</InsuredCardClassification>",
            "<InsurerNumber>06130488</InsurerNumber><InsuredCardSymbol>12</InsuredCardSymbol>"
        )));
        assert!(t.contains("<Name>山田　太郎</Name><NameKana>ﾔﾏﾀﾞ ﾀﾛｳ</NameKana><Sex1>1</Sex1>"));
        assert!(t.contains("<Address>東京都千代田区霞が関1-2-2 &lt;A&amp;B&gt; \"棟\"</Address>"));
        assert!(t.contains(concat!(
            "<InsurerName>全国健康保険協会東京支部</InsurerName><ElderlyRecipientCertificateInfo>",
            "<ElderlyRecipientCertificateDate>20250801</ElderlyRecipientCertificateDate>"
        )));
        assert!(t.contains("<ElderlyRecipientContributionRatio>020</ElderlyRecipientContributionRatio></ElderlyRecipientCertificateInfo>"));
        assert!(t.contains(concat!(
            "<LimitApplicationCertificateRelatedInfo><LimitApplicationCertificateClassification>01",
            "</LimitApplicationCertificateClassification><LimitApplicationCertificateClassificationFlag>A03"
        )));
        assert!(t.contains(concat!(
            "<SpecificDiseasesCertificateList><SpecificDiseasesCertificateInfo><SpecificDiseasesDiseaseCategory>1",
            "</SpecificDiseasesDiseaseCategory><SpecificDiseasesSelfPay>10000</SpecificDiseasesSelfPay>",
            "</SpecificDiseasesCertificateInfo><SpecificDiseasesCertificateInfo>"
        )));
        assert!(t.contains(concat!(
            "<ReferenceNumber>R-001</ReferenceNumber></ResultOfQualificationConfirmation></ResultList>",
            "<QualificationConfirmSearchInfo><InsurerNumber>06130488</InsurerNumber>"
        )));
        assert!(!t.contains("ErrorCode") && !t.contains("PublicExpenseResultList") && !t.contains("BulkConfirmUnitList"));
        assert_round_trip(&xml, &answer, "0");
    }

    #[test]
    fn invalid_and_error_answers() {
        let mut lost = insurance("山田　太郎", "ﾔﾏﾀﾞ ﾀﾛｳ");
        lost.disqualification_date = s("20260930");
        lost.reason_of_loss = s("03");
        let answer = Answer { message_header: Box::new(header("2")), message_body: Box::new(body("2", vec![lost])) };
        let xml = render(&answer, false);
        let t = text(&xml);
        assert!(t.contains("<QualificationValidity>2</QualificationValidity><ResultList>"));
        assert!(t.contains("<DisqualificationDate>20260930</DisqualificationDate>"));
        assert!(t.contains("<ReasonOfLoss>03</ReasonOfLoss><InsurerName>"));
        assert_round_trip(&xml, &answer, "0");

        let mut error = Answer { message_header: Box::new(header("2")), ..Default::default() };
        error.message_body.processing_result_status = "2".into();
        error.message_body.processing_result_code = s("E0101");
        error.message_body.processing_result_message = s("InsurerNumber: bad check digit");
        let xml = render(&error, false);
        assert!(text(&xml).contains(concat!(
            "<MessageBody><ProcessingResultStatus>2</ProcessingResultStatus><ProcessingResultCode>E0101</ProcessingResultCode>",
            "<ProcessingResultMessage>InsurerNumber: bad check digit</ProcessingResultMessage></MessageBody>"
        )));
        assert_round_trip(&xml, &error, "0");
    }

    #[test]
    fn not_delegated_assistance_with_tickets() {
        let entry = assistance(vec![ticket("01", "202611"), ticket("02", "202611")]);
        let answer = Answer { message_header: Box::new(header("2")), message_body: Box::new(body("6", vec![entry])) };
        let xml = render(&answer, false);
        let t = text(&xml);
        assert!(t.contains("<QualificationValidity>6</QualificationValidity>"));
        assert!(t.contains("<ResultList><ResultOfQualificationConfirmation><InsuredCardClassification>A1</InsuredCardClassification><InsurerNumber>12131015</InsurerNumber>"));
        assert!(t.contains(
            "<InsurerName>千代田区福祉事務所</InsurerName><PublicExpenseResultList><MedicalTicketInfo><TicketType>01</TicketType>"
        ));
        assert!(t.contains("<InjuryName1>急性胃腸炎</InjuryName1><MedicalTreatmentType>02</MedicalTreatmentType>"));
        assert!(t.contains("<StatusOfInfecton>02</StatusOfInfecton><Remarks1>備考</Remarks1></MedicalTicketInfo><MedicalTicketInfo><TicketType>02</TicketType>"));
        assert!(t.contains("</MedicalTicketInfo></PublicExpenseResultList></ResultOfQualificationConfirmation></ResultList></MessageBody>"));
        assert_eq!(t.matches("<MedicalTicketInfo>").count(), 2);
        assert_round_trip(&xml, &answer, "0");
    }

    #[test]
    fn delegated_ticket_fetch_units() {
        let unit = |n: &str, month: &str| BulkConfirmUnit {
            qualification_confirm_search_info: Some(SearchInfo { arbitrary_identifier: s(n), ..Default::default() }),
            processing_result_status: "1".into(),
            qualification_validity: s("1"),
            result_of_qualification_confirmation: Some(assistance(vec![ticket("01", month)])),
            reference_number: s(n),
            ..Default::default()
        };
        let mut answer = Answer { message_header: Box::new(header("2")), ..Default::default() };
        answer.message_header.number_of_processing_result = s("2");
        answer.message_header.number_of_normal_processing = s("2");
        answer.message_header.number_of_error = s("0");
        answer.message_body.processing_result_status = "1".into();
        answer.message_body.bulk_confirm_unit_list = vec![unit("T1", "202611"), unit("T2", "202610")];
        let xml = render(&answer, false);
        let t = text(&xml);
        assert!(t.contains("<NumberOfProcessingResult>2</NumberOfProcessingResult><NumberOfNormalProcessing>2</NumberOfNormalProcessing><NumberOfError>0</NumberOfError></MessageHeader>"));
        assert!(t.contains(concat!(
            "</MessageHeader><MessageBody><ProcessingResultStatus>1</ProcessingResultStatus>",
            "<BulkConfirmUnit><QualificationConfirmSearchInfo><ArbitraryIdentifier>T1</ArbitraryIdentifier>",
            "</QualificationConfirmSearchInfo><ProcessingResultStatus>1</ProcessingResultStatus><QualificationValidity>1</QualificationValidity>",
            "<ResultOfQualificationConfirmation><InsuredCardClassification>A1</InsuredCardClassification>"
        )));
        assert!(t.contains("</PublicExpenseResultList></ResultOfQualificationConfirmation><ReferenceNumber>T1</ReferenceNumber></BulkConfirmUnit><BulkConfirmUnit>"));
        assert!(t.ends_with("</BulkConfirmUnit></MessageBody></XmlMsg>"));
        assert!(!t.contains("BulkConfirmUnitList"), "no wrapper around the units");
        assert!(!t.contains("<ResultList>"));
        assert_round_trip(&xml, &answer, "0");
    }

    #[test]
    fn shift_jis_round_trip_and_replacement() {
        let mut answer = valid_answer();
        answer.message_body.result_list.push(insurance("𠮷田　〜子", "ﾖｼﾀﾞ ｼｽﾞｺ"));
        let xml = render(&answer, true);
        let decl = br#"<?xml version="1.0" encoding="Shift_JIS" standalone="no"?><XmlMsg>"#;
        assert!(xml.starts_with(decl));
        let (decoded, _, errors) = SHIFT_JIS.decode(&xml);
        assert!(!errors && !decoded.contains("&#"));
        assert!(decoded.contains("<CharacterCodeIdentifier>1</CharacterCodeIdentifier>"));
        assert!(decoded.contains("<Name>●田　～子</Name>"));
        // Full-width kanji are two bytes, half-width kana one byte.
        assert!(xml.windows(4).any(|w| w == [0x8E, 0x52, 0x93, 0x63])); // 山田
        assert!(xml.windows(3).any(|w| w == [0xD4, 0xCF, 0xC0])); // ﾔﾏﾀ
        assert!(xml.windows(2).any(|w| w == [0x81, 0x9C])); // ●

        let mut expected = answer.clone();
        expected.message_body.result_list[1].name = s("●田　～子");
        assert_round_trip(&xml, &expected, "1");
        let back = parse(&xml).unwrap();
        assert_eq!(back.message_body.result_list[0].name.as_deref(), Some("山田　太郎"));
        assert_eq!(back.message_body.result_list[1].name_kana.as_deref(), Some("ﾖｼﾀﾞ ｼｽﾞｺ"));
    }

    #[test]
    fn edge_values_round_trip() {
        let mut answer = valid_answer();
        answer.message_header.error_message = s("");
        let entry = &mut answer.message_body.result_list[0];
        entry.insured_name = s("  padded\r\nline ");
        entry.elderly_recipient_certificate_info = Some(Default::default());
        entry.specific_diseases_certificate_list = Some(vec![]);
        let xml = render(&answer, false);
        let t = text(&xml);
        assert!(t.contains("<ErrorMessage></ErrorMessage>"));
        assert!(t.contains("<ElderlyRecipientCertificateInfo></ElderlyRecipientCertificateInfo>"));
        assert!(t.contains("<InsuredName>  padded&#13;\nline </InsuredName>"));
        assert_round_trip(&xml, &answer, "0");
        // Self-closing elements, comments and pretty-printing whitespace from other tools.
        let pretty = "<?xml version=\"1.0\"?>\n<!-- x --><XmlMsg>\n <MessageHeader><ProcessExecutionTime/>\
            <QualificationConfirmationDate>20261122</QualificationConfirmationDate><MedicalInstitutionCode>1311111111</MedicalInstitutionCode>\
            <ReferenceClassification>1</ReferenceClassification><SegmentOfResult>1</SegmentOfResult>\
            <CharacterCodeIdentifier>0</CharacterCodeIdentifier><SnapshotGeneration>1</SnapshotGeneration><DeltaSequence>0</DeltaSequence>\n </MessageHeader>\n \
            <MessageBody><ProcessingResultStatus>1</ProcessingResultStatus><ResultList>\n  <ResultOfQualificationConfirmation/>\n </ResultList></MessageBody>\n</XmlMsg>\n";
        let back = parse(pretty.as_bytes()).unwrap();
        assert_eq!(back.message_header.process_execution_time, "");
        assert_eq!(back.message_body.result_list, vec![ResultOfQualificationConfirmation::default()]);
    }

    #[test]
    fn parse_errors() {
        let err = |xml: &str| parse(xml.as_bytes()).unwrap_err();
        assert!(matches!(err("<Other/>"), XmlError::Structure(_)));
        assert!(matches!(err(r#"<?xml version="1.0" encoding="x-klingon"?><XmlMsg/>"#), XmlError::UnsupportedEncoding(_)));
        assert!(matches!(err("<XmlMsg><MessageHeader></XmlMsg>"), XmlError::Syntax(_)));
        assert!(matches!(err("<XmlMsg><MessageBody/></XmlMsg>"), XmlError::Answer(_)));
        assert!(matches!(err("<XmlMsg><MessageHeader>text<A>1</A></MessageHeader></XmlMsg>"), XmlError::Structure(_)));
        assert!(matches!(
            err("<XmlMsg><MessageBody><ResultList><Name>x</Name></ResultList></MessageBody></XmlMsg>"),
            XmlError::Structure(_)
        ));
        let bad_sjis = [&br#"<?xml version="1.0" encoding="Shift_JIS"?><XmlMsg>"#[..], &[0x81, 0x20], b"</XmlMsg>"].concat();
        assert!(matches!(parse(&bad_sjis).unwrap_err(), XmlError::Malformed("Shift_JIS")));
    }
}
