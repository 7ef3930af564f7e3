//! The end-to-end test harness: one synthetic snapshot per test binary
//! (generated and compiled once, into a temporary directory), a server on
//! 127.0.0.1:0 with a generated PKI, connected clients per role, and real
//! keys picked from the snapshot records with the answers they must get.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use elig_client::tls::Identity;
use elig_client::{Client, ClientError, ClientOptions};
use elig_engine::engine::Engine;
use elig_engine::lookup::{assistance_in_force, insurance_in_force, Clock};
use elig_server::config::{Config, Limits, TlsPaths, Udp};
use elig_server::dev::certs::{DevPki, Pem};
use elig_server::quic::server::Server;

pub mod nats;
pub mod tier;

/// The data set: small, so the whole suite stays fast.
pub const PERSONS: u64 = 3000;
pub const SEED: u64 = 7;
/// The export date and the server's fixed clock: answers do not depend on
/// the day the tests run.
pub const TODAY: u32 = 20261122;
pub const NOW: u64 = 20261122120000;

/// The shared snapshot, its engine and keys.
#[derive(Debug)]
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The synthetic export the snapshot was compiled from.
    pub export: PathBuf,
    pub snapshot: PathBuf,
    pub engine: Arc<Engine>,
    pub keys: Keys,
}

/// Keys found by walking the snapshot records (not through the lookup
/// code), with what the answers must say.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Insurance card in force today: (insurer, symbol, number, branch, birth).
    pub card_valid: (String, String, String, String, u32),
    /// The person of `card_valid`.
    pub card_valid_person: String,
    /// A card whose only qualification of its person is lost: answer 2.
    pub card_lost: Option<(String, String, String, String, u32)>,
    /// A certificate serial valid today whose person has insurance in force.
    pub serial_valid: String,
    pub processing_valid: String,
    /// (payer, recipient, birth, delegated institution) with a ticket of this month.
    pub ticket: (String, String, u32, String),
    /// Tickets of this month delegating `ticket.3`.
    pub tickets_of_institution: usize,
    /// Another valid institution code that no ticket of this month delegates.
    pub other_institution: String,
}

impl Keys {
    pub fn card_query(card: &(String, String, String, String, u32), institution: &str, id: &str) -> String {
        format!(
            r#"{{"MedicalInstitutionCode":"{institution}","QualificationConfirmationDate":"{TODAY}","ArbitraryIdentifier":"{id}","InsuranceCard":{{"InsurerNumber":"{}","InsuredCardSymbol":"{}","InsuredIdentificationNumber":"{}","InsuredBranchNumber":"{}","Birthdate":"{}"}}}}"#,
            card.0, card.1, card.2, card.3, card.4
        )
    }

    pub fn valid_card_query(&self, institution: &str, id: &str) -> String {
        Keys::card_query(&self.card_valid, institution, id)
    }

    pub fn serial_query(&self, institution: &str) -> String {
        format!(r#"{{"MedicalInstitutionCode":"{institution}","MyNumberCard":{{"CertificateSerialNumber":"{}"}}}}"#, self.serial_valid)
    }

    pub fn processing_query(&self, institution: &str) -> String {
        format!(r#"{{"MedicalInstitutionCode":"{institution}","MyNumberCard":{{"ProcessingNumber":"{}"}}}}"#, self.processing_valid)
    }

    pub fn ticket_query(&self, institution: &str, id: &str) -> String {
        let t = &self.ticket;
        format!(
            r#"{{"MedicalInstitutionCode":"{institution}","ArbitraryIdentifier":"{id}","MedicalTicket":{{"PayerNumber":"{}","RecipientNumber":"{}","Birthdate":"{}"}}}}"#,
            t.0, t.1, t.2
        )
    }

    /// The delegated institution's code.
    pub fn institution(&self) -> &str {
        &self.ticket.3
    }
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// Generate and compile the snapshot once per test binary.
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("elig-e2e-").tempdir().expect("temporary directory");
        let snapshot = elig_server::dev::demo::synthetic_snapshot(dir.path(), PERSONS, SEED, TODAY).expect("synthetic snapshot");
        let engine = Arc::new(Engine::open(&snapshot).expect("open the snapshot"));
        let keys = find_keys(&engine);
        Fixture { export: dir.path().join("export"), _dir: dir, snapshot, engine, keys }
    })
}

fn find_keys(engine: &Engine) -> Keys {
    let gen = engine.pin();
    let month = TODAY / 100;
    let mut k = Keys::default();
    let mut ticket = None;
    let mut institutions = std::collections::BTreeMap::<String, usize>::new();
    for (_, p) in gen.snapshot.iter_persons() {
        let birth = p.birth_date.to_native();
        let card = |i: &elig_engine::model::ArchivedInsurance| {
            (i.insurer_number.to_string(), i.card_symbol.to_string(), i.card_number.to_string(), i.branch_number.to_string(), birth)
        };
        let in_force = p.insurance.iter().any(|i| insurance_in_force(i, TODAY));
        let assisted = p.assistance.iter().any(|a| assistance_in_force(a, TODAY));
        if k.card_valid.0.is_empty() && p.insurance.len() == 1 && in_force && !assisted {
            k.card_valid = card(&p.insurance[0]);
            k.card_valid_person = p.person_id.to_string();
        }
        if k.card_lost.is_none() && p.insurance.len() == 1 && !in_force && p.assistance.is_empty() {
            k.card_lost = Some(card(&p.insurance[0]));
        }
        if k.serial_valid.is_empty() && in_force && p.certificates.len() == 1 {
            let c = &p.certificates[0];
            if c.revoked_at.to_native() == 0 && c.valid_from.to_native() <= TODAY && TODAY <= c.valid_to.to_native() {
                k.serial_valid = c.serial_number.to_string();
                k.processing_valid = c.processing_number.to_string();
            }
        }
        for a in p.assistance.iter() {
            for t in a.tickets.iter().filter(|t| t.treatment_month.to_native() == month) {
                *institutions.entry(t.institution_code.to_string()).or_default() += 1;
                if ticket.is_none() && assistance_in_force(a, TODAY) {
                    ticket = Some((a.payer_number.to_string(), a.recipient_number.to_string(), birth, t.institution_code.to_string()));
                }
            }
        }
    }
    k.ticket = ticket.expect("the synthetic data has a ticket of this month");
    k.tickets_of_institution = institutions[&k.ticket.3];
    // A valid code in the same prefecture and table that no ticket names.
    k.other_institution = (0..100_000u32)
        .map(|n| elig_engine::ids::with_check_digit(&format!("{}{:04}", &k.ticket.3[..5], n)))
        .find(|c| !institutions.contains_key(c) && elig_engine::ids::institution_code(c).is_ok())
        .expect("a free institution code");
    assert!(!k.card_valid.0.is_empty() && !k.serial_valid.is_empty(), "the synthetic data has valid cards and certificates");
    k
}

/// A card in force today of a person with one qualification and no public
/// assistance, found by walking the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCard {
    pub person_id: String,
    /// (insurer, symbol, number, branch, birth), as [`Keys::card_query`] takes it.
    pub card: (String, String, String, String, u32),
}

/// Up to `n` cards in force today in the live generation of `engine`.
pub fn valid_cards(engine: &Engine, n: usize) -> Vec<ValidCard> {
    let gen = engine.pin();
    let mut out = Vec::new();
    for (_, p) in gen.snapshot.iter_persons() {
        let in_force = p.insurance.iter().any(|i| insurance_in_force(i, TODAY));
        let assisted = p.assistance.iter().any(|a| assistance_in_force(a, TODAY));
        if p.insurance.len() == 1 && in_force && !assisted {
            let i = &p.insurance[0];
            out.push(ValidCard {
                person_id: p.person_id.to_string(),
                card: (
                    i.insurer_number.to_string(),
                    i.card_symbol.to_string(),
                    i.card_number.to_string(),
                    i.branch_number.to_string(),
                    p.birth_date.to_native(),
                ),
            });
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// An insurance row for a delta batch: a new card `symbol`/`number`
/// (branch 01) of `insurer` for `person_id`, in force since 2020.
pub fn insurance_row(qualification_id: &str, person_id: &str, insurer: &str, symbol: &str, number: &str) -> serde_json::Value {
    serde_json::json!({
        "qualification_id": qualification_id, "person_id": person_id, "insurer_number": insurer,
        "card_symbol": symbol, "card_number": number, "branch_number": "01", "card_classification": "01",
        "personal_family": "1", "insurer_name": "デルタ健康保険組合", "qualification_date": "20200101",
    })
}

/// A server on 127.0.0.1:0 serving the fixture, with its own PKI.
#[derive(Debug)]
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    pub pki: DevPki,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

/// Which certificate a test client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Central,
    Institution,
    Operator,
}

impl TestServer {
    /// Start a server on the shared fixture engine (read-only: it has no
    /// delta log, so delta batches are refused) with `limits`; `audit` and
    /// `metrics` switch those on.
    pub async fn start_with(limits: Limits, audit: bool, metrics: bool) -> TestServer {
        TestServer::start_on(fixture().engine.clone(), None, limits, audit, metrics).await
    }

    /// Start a server on a writable engine ([`Writable`]): deltas and swaps
    /// change only that engine.
    pub async fn start_writable(w: &Writable) -> TestServer {
        TestServer::start_on(w.engine.clone(), Some(w.log.clone()), Limits::default(), false, false).await
    }

    /// Start a server on `engine`, whose delta log is `delta_log` (the live
    /// snapshot record goes beside it).
    pub async fn start_on(engine: Arc<Engine>, delta_log: Option<PathBuf>, limits: Limits, audit: bool, metrics: bool) -> TestServer {
        TestServer::start_full(engine, delta_log, limits, audit, metrics, Udp::default(), None).await
    }

    /// Start a server on the shared fixture engine with these UDP settings.
    pub async fn start_with_udp(udp: Udp) -> TestServer {
        TestServer::start_full(fixture().engine.clone(), None, Limits::default(), false, false, udp, None).await
    }

    async fn start_full(
        engine: Arc<Engine>,
        delta_log: Option<PathBuf>,
        limits: Limits,
        audit: bool,
        metrics: bool,
        udp: Udp,
        feed: Option<elig_server::ops::feed::FeedConfig>,
    ) -> TestServer {
        let fx = fixture();
        let pki = DevPki::generate(fx.keys.institution(), &["localhost"]).expect("dev PKI");
        let dir = tempfile::tempdir().expect("temporary directory");
        let certs = dir.path().join("certs");
        pki.write(&certs).expect("write the PKI");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("constant address"),
            snapshot_dir: fx.snapshot.clone(),
            tls: TlsPaths { ca: certs.join("ca.pem"), cert: certs.join("server.pem"), key: certs.join("server.key") },
            metrics_listen: metrics.then(|| "127.0.0.1:0".parse().expect("constant address")),
            audit_log: audit.then(|| dir.path().join("audit.jsonl")),
            audit_key_salt: "e2e".into(),
            delta_log: delta_log.unwrap_or_else(|| dir.path().join("deltas.log")),
            fixed_clock: Some(NOW),
            worker_threads: elig_server::config::DEFAULT_WORKER_THREADS,
            // Two workers as on the 2-core CI machine: every e2e test crosses them.
            workers: 2,
            lock_memory: true,
            residency: elig_engine::residency::Residency::Resident,
            memory_limit: elig_engine::residency::MemoryLimit::Available,
            udp,
            limits,
            feed,
        };
        let server = Server::start(&config, engine).await.expect("start the server");
        let addr = server.local_addr();
        TestServer { server, addr, pki, dir, config }
    }

    /// Start a server on a writable engine that follows the delta stream.
    pub async fn start_following(w: &Writable, feed: elig_server::ops::feed::FeedConfig) -> TestServer {
        TestServer::start_full(w.engine.clone(), Some(w.log.clone()), Limits::default(), false, false, Udp::default(), Some(feed)).await
    }

    pub async fn start() -> TestServer {
        TestServer::start_with(Limits::default(), false, false).await
    }

    pub fn pem(&self, who: As) -> &Pem {
        match who {
            As::Central => &self.pki.central,
            As::Institution => &self.pki.institution,
            As::Operator => &self.pki.operator,
        }
    }

    /// Options that trust our CA and present `identity`.
    pub fn options(&self, identity: Option<&Pem>) -> ClientOptions {
        let identity = identity.map(|p| Identity::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes(), "test").expect("test identity"));
        ClientOptions::new(self.addr, "localhost", self.pki.ca.cert_pem.clone().into_bytes(), identity)
    }

    pub async fn client(&self, who: As) -> Client {
        Client::connect(&self.options(Some(self.pem(who)))).await.expect("connect")
    }

    /// Connect with `identity` and make one lookup: how a refused client sees it.
    pub async fn try_lookup(&self, identity: Option<&Pem>, query: &str) -> Result<elig_engine::answer::Answer, ClientError> {
        let client = Client::connect(&self.options(identity)).await?;
        client.lookup(query.as_bytes()).await
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }
}

/// An engine of its own, with a delta log, for tests that change it.
#[derive(Debug)]
pub struct Writable {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub log: PathBuf,
}

impl Writable {
    /// Open `snapshot` with a new, empty delta log in a temporary directory.
    pub fn open(snapshot: &Path) -> Writable {
        let dir = tempfile::Builder::new().prefix("elig-writable-").tempdir().expect("temporary directory");
        let log = dir.path().join("deltas.log");
        let (engine, replay) = Engine::open_with_log(snapshot, &log).expect("open with a delta log");
        assert_eq!(replay, elig_engine::engine::Replay::default());
        Writable { dir, engine: Arc::new(engine), log }
    }

    /// On the shared fixture snapshot.
    pub fn fixture() -> Writable {
        Writable::open(&fixture().snapshot)
    }
}

/// Compile the fixture's export again into `out`, as `generation`.
pub fn compile_generation(out: &Path, generation: u64) -> PathBuf {
    let mut o = elig_loader::compile::CompileOptions::new(&fixture().export, out);
    o.generation = Some(generation);
    o.today = Some(TODAY);
    elig_loader::compile::compile(&o).expect("compile a snapshot").out
}

/// One line of a delta batch: an upsert.
pub fn upsert(table: &str, row: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"op": "upsert", "table": table, "row": row})
}

/// One line of a delta batch: a delete by key.
pub fn delete(table: &str, key: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"op": "delete", "table": table, "key": key})
}

/// A delta batch: the header line, then one line per change.
pub fn batch(seq: u64, changes: &[serde_json::Value]) -> Vec<u8> {
    let mut text = serde_json::json!({"seq": seq, "created": "20261122101500"}).to_string();
    for c in changes {
        text.push('\n');
        text.push_str(&c.to_string());
    }
    text.push('\n');
    text.into_bytes()
}

/// The clock the test servers answer with.
pub fn clock() -> Clock {
    Clock::at(NOW)
}
