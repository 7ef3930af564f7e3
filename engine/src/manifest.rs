//! `manifest.json`: what a snapshot holds and how to check it.

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "manifest.json";

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
}

impl Manifest {
    pub fn index(&self, name: IndexName) -> Option<&FileEntry> {
        self.indexes.iter().find(|(n, _)| *n == name).map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::IndexName;

    /// `Snapshot::hash_index` finds an index's part by `name as usize`.
    #[test]
    fn all_lists_the_index_names_in_declaration_order() {
        for (i, name) in IndexName::ALL.iter().enumerate() {
            assert_eq!(*name as usize, i, "{}", name.name());
        }
    }
}
