//! The audit log: one JSON line per answered query (a bulk inquiry writes
//! one line per item), appended to a file by a writer thread so requests
//! never wait on the disk (unless 65,536 lines are queued).
//!
//! ```json
//! {"time":"20261122093000","role":"institution","institution":"3410712362","peer":"127.0.0.1:53122",
//!  "request":"lookup","kind":"insurance_card","key_hash":"5c0e…","generation":1,"delta_seq":0,
//!  "status":"1","validity":"1","code":null,"item":null}
//! ```
//!
//! `key_hash` is the first 16 bytes, in hex, of SHA-256 over the configured
//! salt followed by the key (`QueryKey::key_text`); the key itself is never
//! written. Without a salt, small key spaces can be brute-forced from the
//! hash: set `audit_key_salt` in production.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::{Outcome, Role};

const QUEUE: usize = 65_536;

#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    pub time: String,
    pub role: &'static str,
    pub institution: &'a str,
    pub peer: String,
    pub request: &'static str,
    pub kind: &'static str,
    pub key_hash: Option<String>,
    pub generation: u64,
    pub delta_seq: u64,
    pub status: &'static str,
    pub validity: Option<&'static str>,
    pub code: Option<&'a str>,
    pub item: Option<u64>,
}

/// The audit sink (disabled when no file is configured).
#[derive(Debug)]
pub struct Audit {
    salt: String,
    tx: Mutex<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

/// The hash of a key as written to the audit log.
pub fn key_hash(salt: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(key.as_bytes());
    hex::encode(&h.finalize()[..16])
}

impl Audit {
    pub fn disabled() -> Audit {
        Audit { salt: String::new(), tx: Mutex::new(None), writer: Mutex::new(None) }
    }

    /// Append to `path` (created if needed).
    pub fn open(path: &Path, salt: &str) -> std::io::Result<Audit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let writer = std::thread::Builder::new().name("elig-audit".into()).spawn(move || write_loop(rx, BufWriter::new(file)))?;
        Ok(Audit { salt: salt.to_string(), tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)) })
    }

    /// Log one answered query.
    pub fn record(&self, time: u64, role: &Role, peer: SocketAddr, o: &Outcome) {
        let tx = match self.tx.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(tx) => tx.clone(),
                None => return,
            },
            Err(_) => return,
        };
        let rec = AuditRecord {
            time: time.to_string(),
            role: role.name(),
            institution: &o.institution,
            peer: peer.to_string(),
            request: o.request.name(),
            kind: o.asked.name(),
            key_hash: o.key.as_deref().map(|k| key_hash(&self.salt, k)),
            generation: o.generation,
            delta_seq: o.delta_seq,
            status: o.status.code(),
            validity: o.validity.map(|v| v.code()),
            code: o.code.as_deref(),
            item: o.item,
        };
        let Ok(mut line) = serde_json::to_vec(&rec) else { return };
        line.push(b'\n');
        if tx.send(line).is_err() {
            tracing::error!("audit writer has stopped; an audit line was lost");
        }
    }

    /// Flush everything queued and stop the writer.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "audit log write failed"),
                Err(_) => tracing::error!("audit writer panicked"),
            }
        }
    }
}

fn write_loop(rx: Receiver<Vec<u8>>, mut out: BufWriter<std::fs::File>) -> std::io::Result<()> {
    while let Ok(line) = rx.recv() {
        out.write_all(&line)?;
        // Drain what is queued, then flush so the file is current when idle.
        loop {
            match rx.try_recv() {
                Ok(line) => out.write_all(&line)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return out.flush(),
            }
        }
        out.flush()?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_hashed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&path, "salt").unwrap();
        use crate::core::{Asked, Request};
        use elig_engine::answer::{Status, Validity};
        let o = Outcome {
            request: Request::Bulk,
            asked: Asked::Key(elig_engine::query::KeyKind::InsuranceCard),
            institution: "3410712362".into(),
            key: Some("06130488|12|3456|01|19800101".into()),
            generation: 3,
            delta_seq: 0,
            status: Status::Normal,
            validity: Some(Validity::Valid),
            code: None,
            item: Some(7),
            certificate_check: false,
        };
        audit.record(20261122093000, &Role::Central, "127.0.0.1:5000".parse().unwrap(), &o);
        audit.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["role"], "central");
        assert_eq!(v["item"], 7);
        assert_eq!(v["validity"], "1");
        assert_eq!(v["key_hash"], key_hash("salt", "06130488|12|3456|01|19800101"));
        assert_eq!(v["key_hash"].as_str().unwrap().len(), 32);
        assert!(!text.contains("3456|01"), "the key itself is never written");
    }
}
