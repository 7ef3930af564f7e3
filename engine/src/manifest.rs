//! `manifest.json`: what a snapshot holds and how to check it.
//!
//! The manifest checks itself: its `checksum` is the xxh3-64 of its
//! canonical bytes (`serde_json::to_vec_pretty` with `checksum` empty), and
//! the file must be exactly its canonical encoding with the checksum filled
//! in ([`Manifest::encode`]). So every byte of it is checked: an edit either
//! breaks the JSON, changes a value (the checksum no longer matches) or only
//! its layout (the bytes are no longer canonical). It also carries the
//! checksum of `anomalies.csv`, and the checksum of every shard and index.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub const MANIFEST_FILE: &str = "manifest.json";
/// The linkage anomalies found at compile, checked like every other file.
pub const ANOMALIES_FILE: &str = "anomalies.csv";

/// The indexes of a snapshot, each in `index-<name>.rkyv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexName {
    /// Certificate serial number.
    Serial,
    /// J-LIS processing number.
    Processing,
    /// Insurer + symbol + number + branch.
    Insurance,
    /// Payer + recipient number.
    Assistance,
    /// Delegated institution + treatment month.
    Tickets,
    /// Primary ids, for deltas.
    PersonId,
    QualificationId,
    AssistanceId,
    TicketId,
}

impl IndexName {
    pub const ALL: [IndexName; 9] = [
        IndexName::Serial,
        IndexName::Processing,
        IndexName::Insurance,
        IndexName::Assistance,
        IndexName::Tickets,
        IndexName::PersonId,
        IndexName::QualificationId,
        IndexName::AssistanceId,
        IndexName::TicketId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IndexName::Serial => "serial",
            IndexName::Processing => "processing",
            IndexName::Insurance => "insurance",
            IndexName::Assistance => "assistance",
            IndexName::Tickets => "tickets",
            IndexName::PersonId => "person_id",
            IndexName::QualificationId => "qualification_id",
            IndexName::AssistanceId => "assistance_id",
            IndexName::TicketId => "ticket_id",
        }
    }

    pub fn file_name(self) -> String {
        format!("index-{}.rkyv", self.name())
    }
}

pub fn shard_file_name(shard: usize) -> String {
    format!("persons-{shard:05}.rkyv")
}

/// One file of the snapshot, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    /// xxh3-64 of the payload, hex (equals the footer's checksum).
    pub checksum: String,
    /// Records (shards) or distinct keys (indexes).
    pub count: u64,
}

/// One input file of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub file: String,
    pub bytes: u64,
    /// xxh3-64 of the file as read, hex.
    pub checksum: String,
    pub rows: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    /// Monotonic id of this snapshot; a live swap refuses an older one.
    pub generation: u64,
    /// `YYYYMMDDHHmmss`, Japan time.
    pub created: u64,
    /// The last delta sequence folded into this snapshot (0 for a fresh export).
    pub delta_seq: u64,
    pub persons: u64,
    pub retain_lost_days: u32,
    pub shards: Vec<FileEntry>,
    pub indexes: Vec<(IndexName, FileEntry)>,
    pub sources: Vec<SourceFile>,
    /// Counts of records by table, after compile.
    pub counts: Vec<(String, u64)>,
    /// `anomalies.csv`: bytes, xxh3-64 of the whole file, anomalies listed.
    pub anomalies: FileEntry,
    /// xxh3-64 (hex) of the canonical bytes of this manifest with this field
    /// empty; [`Manifest::encode`] fills it in.
    pub checksum: String,
}

/// Why manifest bytes were refused ([`Manifest::decode`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("not a valid manifest: {0}")]
    Json(#[source] serde_json::Error),
    #[error("manifest format version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("manifest checksum mismatch: it says {expected}, its content hashes to {got} (edited or corrupt)")]
    ChecksumMismatch { expected: String, got: String },
    #[error("manifest bytes are not its canonical encoding (edited or corrupt; a published manifest is never rewritten)")]
    NotCanonical,
}

/// The first field read from manifest bytes: the version decides how the
/// rest is read, so an older manifest is refused by version, not by shape.
#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

impl Manifest {
    pub fn index(&self, name: IndexName) -> Option<&FileEntry> {
        self.indexes.iter().find(|(n, _)| *n == name).map(|(_, e)| e)
    }

    fn pretty(&self) -> Vec<u8> {
        // Plain structs of integers and strings always serialise.
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }

    /// xxh3-64 of the canonical bytes, with `checksum` empty.
    pub fn content_checksum(&self) -> String {
        let bare = Manifest { checksum: String::new(), ..self.clone() };
        format!("{:016x}", xxh3_64(&bare.pretty()))
    }

    /// The bytes of `manifest.json`, with the checksum filled in.
    pub fn encode(&self) -> Vec<u8> {
        Manifest { checksum: self.content_checksum(), ..self.clone() }.pretty()
    }

    /// Read manifest bytes of format version `expected`: the version first,
    /// then the content, its checksum and its canonical form.
    pub fn decode(bytes: &[u8], expected: u32) -> Result<Manifest, ManifestError> {
        let found = serde_json::from_slice::<VersionOnly>(bytes).map_err(ManifestError::Json)?.format_version;
        if found != expected {
            return Err(ManifestError::Version { found, expected });
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        let got = manifest.content_checksum();
        if got != manifest.checksum {
            return Err(ManifestError::ChecksumMismatch { expected: manifest.checksum, got });
        }
        if manifest.pretty() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str) -> FileEntry {
        FileEntry { file: file.into(), bytes: 10, checksum: "00000000000000aa".into(), count: 1 }
    }

    fn sample() -> Manifest {
        Manifest {
            format_version: 2,
            generation: 7,
            created: 20261122100000,
            delta_seq: 0,
            persons: 1,
            retain_lost_days: 1826,
            shards: vec![entry("persons-00000.rkyv")],
            indexes: vec![(IndexName::Serial, entry("index-serial.rkyv"))],
            sources: Vec::new(),
            counts: vec![("persons".into(), 1)],
            anomalies: entry(ANOMALIES_FILE),
            checksum: String::new(),
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let m = sample();
        let bytes = m.encode();
        let back = Manifest::decode(&bytes, 2).unwrap();
        assert_eq!(back, Manifest { checksum: m.content_checksum(), ..m });
    }

    /// Every single-byte change of a manifest is refused, whitespace included.
    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x04, 0x20, 0x29, 0x80] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                assert!(Manifest::decode(&b, 2).is_err(), "byte {at} ^ {flip:#x} passed");
            }
        }
    }

    #[test]
    fn an_edited_delta_seq_is_a_checksum_mismatch_and_a_reordered_one_not_canonical() {
        let text = String::from_utf8(sample().encode()).unwrap();
        let edited = text.replace("\"delta_seq\": 0", "\"delta_seq\": 4");
        assert!(matches!(Manifest::decode(edited.as_bytes(), 2), Err(ManifestError::ChecksumMismatch { .. })));
        let compact = serde_json::to_vec(&serde_json::from_str::<Manifest>(&text).unwrap()).unwrap();
        assert!(matches!(Manifest::decode(&compact, 2), Err(ManifestError::NotCanonical)));
    }

    #[test]
    fn another_version_is_refused_by_version_before_its_shape() {
        let err = Manifest::decode(br#"{"format_version": 1, "generation": 1}"#, 2).unwrap_err();
        assert!(matches!(err, ManifestError::Version { found: 1, expected: 2 }), "{err}");
    }

    /// `Snapshot::hash_index` finds an index's part by `name as usize`.
    #[test]
    fn all_lists_the_index_names_in_declaration_order() {
        for (i, name) in IndexName::ALL.iter().enumerate() {
            assert_eq!(*name as usize, i, "{}", name.name());
        }
    }
}
