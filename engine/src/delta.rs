//! Delta batches (`contract.md` section 2): JSON Lines, a header line
//! `{"seq": N, "created": "YYYYMMDDHHmmss"}` then one change per line. Rows
//! are validated exactly like export rows; one bad line refuses the batch.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

use crate::ids;
use crate::model::ConsentKind;
use crate::rows::{parse_row, Fields, Row, RowError, Table};

#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub created: u64,
    /// Each change with its 1-based line number in the batch.
    pub changes: Vec<(usize, Change)>,
    /// What makes a repeat a repeat: the digest of the change lines.
    pub digest: Digest,
}

/// The digest of a batch's change lines (everything after the header line,
/// `contract.md` section 2): xxh3-128 of the non-blank lines, each trimmed of
/// surrounding whitespace, joined by `\n`. The same changes sent again with
/// other line endings, blank lines or another `created` time have the same
/// digest; a batch with other changes under the same seq does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub u128);

impl Digest {
    /// The digest of change lines (the lines after the header).
    pub fn of_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Digest {
        let mut joined = Vec::new();
        for line in lines.into_iter().filter(|l| !l.trim().is_empty()) {
            if !joined.is_empty() {
                joined.push(b'\n');
            }
            joined.extend_from_slice(line.trim().as_bytes());
        }
        Digest(xxh3_128(&joined))
    }

    /// The digest of a whole batch text (its first non-blank line is the
    /// header), without validating it; `None` if it is not UTF-8.
    pub fn of_batch(text: &[u8]) -> Option<Digest> {
        let text = std::str::from_utf8(text).ok()?;
        Some(Digest::of_lines(text.lines().filter(|l| !l.trim().is_empty()).skip(1)))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Digest, Self::Err> {
        u128::from_str_radix(s, 16).map(Digest)
    }
}

// A batch holds at most a few thousand changes, briefly: boxing the row
// would cost an allocation per change for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Row),
    Delete(Delete),
}

/// A delete, by the key columns of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delete {
    Person { person_id: String },
    Certificate { serial: String, person_id: String },
    Revoked { serial: String },
    Insurance { qualification_id: String },
    Elderly { qualification_id: String },
    Limit { qualification_id: String },
    SpecificDisease { qualification_id: String, category: String },
    Assistance { assistance_id: String },
    Ticket { ticket_id: String },
    Reference { institution: String, person_id: String },
    Consent { institution: String, person_id: String, kind: ConsentKind },
}

/// Why a batch was refused: the 1-based line (0: the whole text) and the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BatchError {
    pub line: usize,
    pub reason: LineError,
}

/// What is wrong with one line of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    #[error("batch is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("empty batch: the first line must be {{\"seq\": N, \"created\": \"YYYYMMDDHHmmss\"}}")]
    Empty,
    /// serde_json's message (its error is not `Clone`).
    #[error("header is not a JSON object: {0}")]
    HeaderNotJson(String),
    #[error("header 'seq' must be a positive integer")]
    Seq,
    #[error("header 'created' must be a timestamp string")]
    CreatedMissing,
    #[error("{0}")]
    Created(ids::FieldError),
    #[error("header: unknown field '{field}'")]
    HeaderField { field: String },
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("'op' must be \"upsert\" or \"delete\"")]
    OpMissing,
    #[error("unknown op '{value}': must be upsert or delete")]
    Op { value: String },
    #[error("'table' is required")]
    TableMissing,
    #[error("field 'table' value '{value}': unknown table")]
    Table { value: String },
    #[error("unknown field '{field}'")]
    Field { field: String },
    #[error("'{field}' must be an object")]
    NotObject { field: &'static str },
    #[error("table '{table}': unknown column '{column}'")]
    Column { table: Table, column: String },
    #[error("table '{table}': column '{column}' value {value}: must be a string")]
    NotString { table: Table, column: String, value: String },
    #[error("table '{table}': {source}")]
    Row { table: Table, source: RowError },
    #[error("table '{table}': key column '{column}' is required")]
    KeyMissing { table: Table, column: &'static str },
    #[error("table '{table}': column '{column}' value '{value}': {reason}")]
    Key { table: Table, column: &'static str, value: String, reason: String },
}

fn err(line: usize, reason: LineError) -> BatchError {
    BatchError { line, reason }
}

struct JsonFields<'a>(&'a Map<String, Value>);

impl Fields for JsonFields<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.0.get(column).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
}

/// Every value must be a string (or null for absent), every column known.
fn check_columns(table: Table, map: &Map<String, Value>, allowed: impl Fn(&str) -> bool) -> Result<(), LineError> {
    for (k, v) in map {
        if !allowed(k) {
            return Err(LineError::Column { table, column: k.clone() });
        }
        if !(v.is_string() || v.is_null()) {
            return Err(LineError::NotString { table, column: k.clone(), value: v.to_string() });
        }
    }
    Ok(())
}

/// Parse and validate a whole batch.
pub fn parse_batch(text: &[u8]) -> Result<Batch, BatchError> {
    let text = std::str::from_utf8(text).map_err(|e| err(0, LineError::NotUtf8(e)))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines.next().ok_or(err(1, LineError::Empty))?;
    let (seq, created) = parse_header(head).map_err(|reason| err(1, reason))?;
    let rest: Vec<(usize, &str)> = lines.collect();
    let mut changes = Vec::with_capacity(rest.len());
    for &(i, line) in &rest {
        changes.push((i + 1, parse_change(line).map_err(|reason| err(i + 1, reason))?));
    }
    let digest = Digest::of_lines(rest.iter().map(|&(_, l)| l));
    Ok(Batch { seq, created, changes, digest })
}

/// The header line: `(seq, created)`.
fn parse_header(head: &str) -> Result<(u64, u64), LineError> {
    let head: Map<String, Value> = serde_json::from_str(head).map_err(|e| LineError::HeaderNotJson(e.to_string()))?;
    let seq = head.get("seq").and_then(Value::as_u64).filter(|s| *s > 0).ok_or(LineError::Seq)?;
    let created_text = head.get("created").and_then(Value::as_str).ok_or(LineError::CreatedMissing)?;
    let created = ids::timestamp("created", created_text).map_err(LineError::Created)?;
    if let Some(k) = head.keys().find(|k| *k != "seq" && *k != "created") {
        return Err(LineError::HeaderField { field: k.clone() });
    }
    Ok((seq, created))
}

fn parse_change(text: &str) -> Result<Change, LineError> {
    let obj: Map<String, Value> = serde_json::from_str(text).map_err(|e| LineError::NotJson(e.to_string()))?;
    let op = obj.get("op").and_then(Value::as_str).ok_or(LineError::OpMissing)?;
    let table_name = obj.get("table").and_then(Value::as_str).ok_or(LineError::TableMissing)?;
    let table = Table::parse(table_name).ok_or_else(|| LineError::Table { value: table_name.to_string() })?;
    let body_name = match op {
        "upsert" => "row",
        "delete" => "key",
        other => return Err(LineError::Op { value: other.to_string() }),
    };
    if let Some(k) = obj.keys().find(|k| !["op", "table", body_name].contains(&k.as_str())) {
        return Err(LineError::Field { field: k.clone() });
    }
    let body = obj.get(body_name).and_then(Value::as_object).ok_or(LineError::NotObject { field: body_name })?;
    let fields = JsonFields(body);
    if op == "upsert" {
        check_columns(table, body, |c| table.knows(c))?;
        let row = parse_row(table, &fields).map_err(|source| LineError::Row { table, source })?;
        return Ok(Change::Upsert(row));
    }
    check_columns(table, body, |c| table.key().contains(&c))?;
    parse_delete(table, &fields).map(Change::Delete)
}

/// A delete's key columns.
fn parse_delete(table: Table, fields: &JsonFields<'_>) -> Result<Delete, LineError> {
    let get = |column: &'static str| fields.get(column).map(str::trim).ok_or(LineError::KeyMissing { table, column });
    let field = |column: &'static str, r: Result<String, ids::FieldError>| {
        r.map_err(|e| LineError::Key { table, column, value: e.value, reason: e.reason })
    };
    let serial = || field("serial_number", ids::certificate_key("serial_number", get("serial_number")?));
    let institution = || field("institution_code", ids::institution_code(get("institution_code")?));
    Ok(match table {
        Table::Persons => Delete::Person { person_id: get("person_id")?.into() },
        Table::Certificates => Delete::Certificate { serial: serial()?, person_id: get("person_id")?.into() },
        Table::RevokedCertificates => Delete::Revoked { serial: serial()? },
        Table::Insurance => Delete::Insurance { qualification_id: get("qualification_id")?.into() },
        Table::ElderlyCertificates => Delete::Elderly { qualification_id: get("qualification_id")?.into() },
        Table::LimitCertificates => Delete::Limit { qualification_id: get("qualification_id")?.into() },
        Table::SpecificDiseaseCertificates => {
            Delete::SpecificDisease { qualification_id: get("qualification_id")?.into(), category: get("category")?.into() }
        }
        Table::Assistance => Delete::Assistance { assistance_id: get("assistance_id")?.into() },
        Table::Tickets => Delete::Ticket { ticket_id: get("ticket_id")?.into() },
        Table::ReferenceNumbers => Delete::Reference { institution: institution()?, person_id: get("person_id")?.into() },
        Table::Consents => {
            let k = get("kind")?;
            Delete::Consent {
                institution: institution()?,
                person_id: get("person_id")?.into(),
                kind: ConsentKind::parse(k).ok_or_else(|| LineError::Key {
                    table,
                    column: "kind",
                    value: k.to_string(),
                    reason: "unknown kind".into(),
                })?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_parses_upserts_and_deletes() {
        let text = r#"{"seq": 3, "created": "20261122101500"}
{"op": "upsert", "table": "persons", "row": {"person_id": "P9", "name": "山田　花子", "sex": "2", "birth_date": "19900101"}}
{"op": "delete", "table": "insurance", "key": {"qualification_id": "Q1"}}
"#;
        let b = parse_batch(text.as_bytes()).unwrap();
        assert_eq!((b.seq, b.created, b.changes.len()), (3, 20261122101500, 2));
        assert_eq!(b.changes[1].1, Change::Delete(Delete::Insurance { qualification_id: "Q1".into() }));
    }

    #[test]
    fn the_digest_covers_the_change_lines_only() {
        let head = "{\"seq\": 3, \"created\": \"20261122101500\"}";
        let line = r#"{"op": "delete", "table": "insurance", "key": {"qualification_id": "Q1"}}"#;
        let other = r#"{"op": "delete", "table": "insurance", "key": {"qualification_id": "Q2"}}"#;
        let digest = |text: String| parse_batch(text.as_bytes()).unwrap().digest;
        let d = digest(format!("{head}\n{line}\n"));
        // The same changes: CRLF, blank lines, another created time.
        assert_eq!(digest(format!("{head}\r\n\r\n{line}\r\n\n")), d);
        assert_eq!(digest(format!("{{\"seq\": 3, \"created\": \"20261123000000\"}}\n{line}")), d);
        // Other changes, more changes, no changes.
        assert_ne!(digest(format!("{head}\n{other}\n")), d);
        assert_ne!(digest(format!("{head}\n{line}\n{line}\n")), d);
        assert_ne!(digest(format!("{head}\n")), d);
        assert_eq!(d.to_string().len(), 32);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn a_batch_with_no_changes_parses() {
        let b = parse_batch(b"{\"seq\": 7, \"created\": \"20261122101500\"}\n").unwrap();
        assert_eq!((b.seq, b.changes.len()), (7, 0));
    }

    #[test]
    fn a_bad_line_names_its_line_and_reason() {
        let text = "{\"seq\": 3, \"created\": \"20261122101500\"}\n\
{\"op\": \"upsert\", \"table\": \"persons\", \"row\": {\"person_id\": \"P9\", \"name\": \"x\", \"sex\": \"1\", \"birth_date\": \"19900101\"}}\n\
{\"op\": \"upsert\", \"table\": \"assistance\", \"row\": {\"assistance_id\": \"A\", \"person_id\": \"P9\", \"payer_number\": \"12130018\", \"recipient_number\": \"1234566\", \"welfare_office\": \"x\", \"start_date\": \"20260101\"}}\n";
        let e = parse_batch(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
        let message = e.reason.to_string();
        assert!(message.contains("payer_number") && message.contains("12130018") && message.contains("check digit"), "{e}");
        for (bad, want) in [
            ("{\"seq\": 0, \"created\": \"20261122101500\"}", "positive"),
            ("{\"seq\": 1}", "created"),
            ("{\"seq\": 1, \"created\": \"20261122101500\"}\n{\"op\": \"merge\", \"table\": \"persons\", \"row\": {}}", "unknown op"),
            ("{\"seq\": 1, \"created\": \"20261122101500\"}\n{\"op\": \"delete\", \"table\": \"nope\", \"key\": {}}", "unknown table"),
            (
                "{\"seq\": 1, \"created\": \"20261122101500\"}\n{\"op\": \"delete\", \"table\": \"persons\", \"key\": {\"name\": \"x\"}}",
                "unknown column 'name'",
            ),
            (
                "{\"seq\": 1, \"created\": \"20261122101500\"}\n{\"op\": \"upsert\", \"table\": \"persons\", \"row\": {\"person_id\": 5}}",
                "must be a string",
            ),
        ] {
            let e = parse_batch(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
        let e = parse_batch(b"{\"seq\": 1, \"created\": \"20261122101500\"}\n{\"op\": \"delete\", \"table\": \"nope\", \"key\": {}}")
            .unwrap_err();
        assert_eq!(e, BatchError { line: 2, reason: LineError::Table { value: "nope".into() } });
        assert_eq!(e.to_string(), "line 2: field 'table' value 'nope': unknown table");
    }
}
