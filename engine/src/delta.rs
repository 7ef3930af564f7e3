//! Delta batches (`contract.md` section 2): JSON Lines, a header line
//! `{"seq": N, "created": "YYYYMMDDHHmmss"}` then one change per line. Rows
//! are validated exactly like export rows; one bad line refuses the batch.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

use crate::ids;
use crate::model::ConsentKind;
use crate::rows::{parse_row, Fields, Row, Table};

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

/// Why a batch was refused: the 1-based line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct BatchError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> BatchError {
    BatchError { line, message: message.into() }
}

struct JsonFields<'a>(&'a Map<String, Value>);

impl Fields for JsonFields<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.0.get(column).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
}

/// Every value must be a string (or null for absent), every column known.
fn check_columns(line: usize, table: &Table, map: &Map<String, Value>, allowed: impl Fn(&str) -> bool) -> Result<(), BatchError> {
    for (k, v) in map {
        if !allowed(k) {
            return Err(err(line, format!("table '{}': unknown column '{k}'", table.name)));
        }
        if !(v.is_string() || v.is_null()) {
            return Err(err(line, format!("table '{}': column '{k}' value {v}: must be a string", table.name)));
        }
    }
    Ok(())
}

/// Parse and validate a whole batch.
pub fn parse_batch(text: &[u8]) -> Result<Batch, BatchError> {
    let text = std::str::from_utf8(text).map_err(|e| err(0, format!("batch is not UTF-8: {e}")))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, head) =
        lines.next().ok_or_else(|| err(1, "empty batch: the first line must be {\"seq\": N, \"created\": \"YYYYMMDDHHmmss\"}"))?;
    let head: Map<String, Value> = serde_json::from_str(head).map_err(|e| err(1, format!("header is not a JSON object: {e}")))?;
    let seq =
        head.get("seq").and_then(Value::as_u64).filter(|s| *s > 0).ok_or_else(|| err(1, "header 'seq' must be a positive integer"))?;
    let created_text = head.get("created").and_then(Value::as_str).ok_or_else(|| err(1, "header 'created' must be a timestamp string"))?;
    let created = ids::timestamp("created", created_text).map_err(|e| err(1, e.to_string()))?;
    if let Some(k) = head.keys().find(|k| *k != "seq" && *k != "created") {
        return Err(err(1, format!("header: unknown field '{k}'")));
    }
    let rest: Vec<(usize, &str)> = lines.collect();
    let mut changes = Vec::with_capacity(rest.len());
    for &(i, line) in &rest {
        changes.push((i + 1, parse_change(i + 1, line)?));
    }
    let digest = Digest::of_lines(rest.iter().map(|&(_, l)| l));
    Ok(Batch { seq, created, changes, digest })
}

fn parse_change(line: usize, text: &str) -> Result<Change, BatchError> {
    let obj: Map<String, Value> = serde_json::from_str(text).map_err(|e| err(line, format!("not a JSON object: {e}")))?;
    let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| err(line, "'op' must be \"upsert\" or \"delete\""))?;
    let table_name = obj.get("table").and_then(Value::as_str).ok_or_else(|| err(line, "'table' is required"))?;
    let table = Table::by_name(table_name).ok_or_else(|| err(line, format!("unknown table '{table_name}'")))?;
    let body_name = match op {
        "upsert" => "row",
        "delete" => "key",
        other => return Err(err(line, format!("unknown op '{other}': must be upsert or delete"))),
    };
    if let Some(k) = obj.keys().find(|k| !["op", "table", body_name].contains(&k.as_str())) {
        return Err(err(line, format!("unknown field '{k}'")));
    }
    let body = obj.get(body_name).and_then(Value::as_object).ok_or_else(|| err(line, format!("'{body_name}' must be an object")))?;
    let fields = JsonFields(body);
    if op == "upsert" {
        check_columns(line, table, body, |c| table.knows(c))?;
        let row = parse_row(table, &fields).map_err(|e| err(line, format!("table '{}': {e}", table.name)))?;
        return Ok(Change::Upsert(row));
    }
    check_columns(line, table, body, |c| table.key.contains(&c))?;
    let get =
        |c: &str| fields.get(c).map(str::trim).ok_or_else(|| err(line, format!("table '{}': key column '{c}' is required", table.name)));
    let field = |r: Result<String, ids::FieldError>, c: &str| {
        r.map_err(|e| err(line, format!("table '{}': column '{c}' value '{}': {}", table.name, e.value, e.reason)))
    };
    let delete = match table.name {
        "persons" => Delete::Person { person_id: get("person_id")?.into() },
        "certificates" => Delete::Certificate {
            serial: field(ids::certificate_key("serial_number", get("serial_number")?), "serial_number")?,
            person_id: get("person_id")?.into(),
        },
        "revoked_certificates" => {
            Delete::Revoked { serial: field(ids::certificate_key("serial_number", get("serial_number")?), "serial_number")? }
        }
        "insurance" => Delete::Insurance { qualification_id: get("qualification_id")?.into() },
        "elderly_certificates" => Delete::Elderly { qualification_id: get("qualification_id")?.into() },
        "limit_certificates" => Delete::Limit { qualification_id: get("qualification_id")?.into() },
        "specific_disease_certificates" => {
            Delete::SpecificDisease { qualification_id: get("qualification_id")?.into(), category: get("category")?.into() }
        }
        "assistance" => Delete::Assistance { assistance_id: get("assistance_id")?.into() },
        "tickets" => Delete::Ticket { ticket_id: get("ticket_id")?.into() },
        "reference_numbers" => Delete::Reference {
            institution: field(ids::institution_code(get("institution_code")?), "institution_code")?,
            person_id: get("person_id")?.into(),
        },
        "consents" => {
            let k = get("kind")?;
            Delete::Consent {
                institution: field(ids::institution_code(get("institution_code")?), "institution_code")?,
                person_id: get("person_id")?.into(),
                kind: ConsentKind::parse(k)
                    .ok_or_else(|| err(line, format!("table 'consents': column 'kind' value '{k}': unknown kind")))?,
            }
        }
        other => return Err(err(line, format!("unknown table '{other}'"))),
    };
    Ok(Change::Delete(delete))
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
        assert!(e.message.contains("payer_number") && e.message.contains("12130018") && e.message.contains("check digit"), "{e}");
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
    }
}
