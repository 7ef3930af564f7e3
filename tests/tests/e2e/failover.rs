//! Clients fail over (issue 13, item 6): three real `eligd` processes on
//! one snapshot, a client [`Tier`] with their three addresses. One node is
//! killed with SIGKILL and restarted under load: no request fails, every
//! answer equals a single node's, and the node gets traffic again; the
//! same kill without failover fails requests (so the first test can fail).
//! Final refusals are returned once, never retried; operator commands go
//! to the node named only. A real joining node (following a stream it
//! cannot reach) refuses `EN01` and is passed over; a stand-in node that
//! refuses every request with `EN01` or `EN02` ([`RefusingNode`]) shows the
//! retries up to the bound.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elig_client::wire::answer::Answer;
use elig_client::{Client, ClientError, Tier, TierOptions};
use elig_tests::tier::{RefusingNode, Tier as Nodes};
use elig_tests::{batch, fixture, insurance_row, upsert, valid_cards, As, Keys};
use serde_json::Value;

/// An answer as JSON without its `ProcessExecutionTime`.
fn comparable(a: &Answer) -> Value {
    let mut v = serde_json::to_value(a).expect("an answer serializes");
    if let Some(h) = v.get_mut("MessageHeader").and_then(Value::as_object_mut) {
        h.remove("ProcessExecutionTime");
    }
    v
}

/// The requests of the load and the answers one node gave them.
struct Work {
    lookups: Vec<(Vec<u8>, Value)>,
    bulk: Vec<Vec<u8>>,
    bulk_answers: Vec<Value>,
    bulk_summary: Value,
    tickets: Vec<u8>,
    tickets_answer: Value,
}

impl Work {
    /// The queries, answered by node 0 alone.
    async fn answered_by(nodes: &Nodes) -> Work {
        Work::answered_by_node(nodes, 0).await
    }

    /// The queries, answered by node `node` alone.
    async fn answered_by_node(nodes: &Nodes, node: usize) -> Work {
        let fx = fixture();
        let keys = &fx.keys;
        let inst = keys.institution();
        let mut queries: Vec<String> =
            valid_cards(&fx.engine, 20).iter().enumerate().map(|(i, c)| Keys::card_query(&c.card, inst, &format!("c{i}"))).collect();
        queries.extend([keys.serial_query(inst), keys.processing_query(inst), keys.ticket_query(inst, "t")]);
        queries.extend(keys.card_lost.as_ref().map(|c| Keys::card_query(c, inst, "lost")));
        // A refused query is an answer too (EQ04), the same from every node.
        queries.push(format!(r#"{{"MedicalInstitutionCode":"{inst}","InsuranceCard":{{"InsurerNumber":"06130489"}}}}"#));
        let one = Client::connect(&nodes.options(node, As::Central)).await.expect("connect to the node");
        let mut lookups = Vec::new();
        for q in queries {
            let a = one.lookup(q.as_bytes()).await.expect("node 0 answers");
            lookups.push((q.into_bytes(), comparable(&a)));
        }
        let bulk: Vec<Vec<u8>> = lookups.iter().map(|(q, _)| q.clone()).filter(|q| !q.windows(8).any(|w| w == b"MyNumber")).collect();
        let (answers, summary) = one.bulk(bulk.clone()).await.expect("node 0 answers the bulk").collect().await.expect("the bulk");
        let tickets = Client::tickets_query(Some(inst), &(elig_tests::TODAY / 100).to_string(), None);
        let tickets_answer = one.tickets(&tickets).await.expect("tickets").collect().await.expect("the tickets");
        one.close().await;
        Work {
            lookups,
            bulk,
            bulk_answers: answers.iter().map(comparable).collect(),
            bulk_summary: serde_json::to_value(summary).expect("summary"),
            tickets,
            tickets_answer: comparable(&tickets_answer),
        }
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first few failures and wrong answers.
    problems: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Tally {
    fn record(&self, what: &str, result: Result<bool, ClientError>) {
        let problem = match result {
            Ok(true) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(false) => format!("{what}: an answer unlike node 0's"),
            Err(e) => format!("{what}: {e}"),
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut p = self.problems.lock().unwrap();
        if p.len() < 10 {
            p.push(problem);
        }
    }
}

/// Lookups, bulk inquiries and ticket fetches from concurrent tasks until
/// `tally.stop`, each answer compared with node 0's.
fn load(tier: &Tier, work: &Arc<Work>, tally: &Arc<Tally>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (tier, work, tally) = (tier.clone(), work.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !tally.stop.load(Ordering::Relaxed) {
                match w {
                    0 | 1 => {
                        let r = tier.bulk(&work.bulk).await.map(|(answers, summary)| {
                            answers.iter().map(comparable).collect::<Vec<_>>() == work.bulk_answers
                                && serde_json::to_value(summary).ok().as_ref() == Some(&work.bulk_summary)
                        });
                        tally.record("bulk", r);
                    }
                    2 => {
                        let r = tier.tickets(&work.tickets).await.map(|a| comparable(&a) == work.tickets_answer);
                        tally.record("tickets", r);
                    }
                    _ => {
                        let (q, want) = &work.lookups[i % work.lookups.len()];
                        tally.record("lookup", tier.lookup(q).await.map(|a| comparable(&a) == *want));
                    }
                }
                i += 1;
            }
        }));
    }
    tasks
}

/// A tier with every node connected.
async fn connected(opts: TierOptions) -> Tier {
    let tier = Tier::connect(&opts).await.expect("connect to the tier");
    let until = Instant::now() + Duration::from_secs(20);
    while tier.up() != vec![true; opts.nodes.len()] {
        assert!(Instant::now() < until, "not every node connected: {:?}", tier.up());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tier
}

/// Requests node `i` counted in its usage report since it started.
async fn usage_requests(nodes: &Nodes, i: usize, kind: Option<&str>) -> u64 {
    let op = Client::connect(&nodes.options(i, As::Operator)).await.expect("operator connection");
    let usage = op.usage().await.expect("usage");
    op.close().await;
    usage.rows.iter().filter(|r| kind.is_none_or(|k| r.lookup_kind == k)).map(|r| r.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_answer_every_request_while_one_is_killed_and_restarted() {
    let mut nodes = Nodes::start(3);
    let work = Arc::new(Work::answered_by(&nodes).await);
    let tier = connected(nodes.tier_options(As::Central)).await;
    let tally = Arc::new(Tally::default());
    let tasks = load(&tier, &work, &tally);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = tier.sent();
    assert!(before.iter().all(|&n| n > 0), "requests are spread over every node: {before:?}");
    let pid = nodes.nodes[1].pid();
    nodes.nodes[1].kill();
    // Longer than the node timeout: the tier notices the node is gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!tier.up()[1], "the killed node {pid:?} counts as down");
    let while_down = tally.ok.load(Ordering::Relaxed);
    nodes.nodes[1].restart();
    // The restarted process counts its requests from zero.
    let until = Instant::now() + Duration::from_secs(30);
    let served = loop {
        let n = usage_requests(&nodes, 1, None).await;
        if n > 0 || Instant::now() > until {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    tally.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load task");
    }
    let (ok, failed) = (tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed));
    eprintln!(
        "failover: {ok} answered, {failed} failed; attempts per node {:?} ({before:?} before the kill); {served} on the restarted node",
        tier.sent()
    );
    assert_eq!(failed, 0, "failed requests ({ok} answered): {:#?}", tally.problems.lock().unwrap());
    assert!(while_down > 0 && ok > while_down, "answers went on: {while_down} before the restart, {ok} in all");
    assert!(served > 0, "the restarted node got traffic again (sent: {:?})", tier.sent());
    assert!(tier.up().iter().all(|u| *u), "every node connected again: {:?}", tier.up());
    tier.close().await;
}

/// The same kill with a failover time of zero fails requests: the test
/// above would see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failover_the_same_kill_fails_requests() {
    let mut nodes = Nodes::start(3);
    let work = Arc::new(Work::answered_by(&nodes).await);
    let tier = connected(TierOptions { failover: Duration::ZERO, ..nodes.tier_options(As::Central) }).await;
    let tally = Arc::new(Tally::default());
    let tasks = load(&tier, &work, &tally);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    nodes.nodes[1].kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    tally.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a load task");
    }
    let problems = tally.problems.lock().unwrap().clone();
    eprintln!("no failover: {} answered, {} failed: {problems:#?}", tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed));
    assert!(tally.failed.load(Ordering::Relaxed) > 0, "requests in flight on the killed node fail without failover");
    assert!(problems.iter().all(|p| !p.contains("unlike")), "failures, never wrong answers: {problems:#?}");
    tier.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_refusal_is_returned_once_and_a_dead_tier_fails_within_the_bound() {
    let mut nodes = Nodes::start(3);
    let keys = &fixture().keys;
    let failover = Duration::from_secs(1);
    let tier = connected(TierOptions { failover, ..nodes.tier_options(As::Institution) }).await;
    // An institution certificate asking as another institution: a permission answer (EP01).
    let a = tier.lookup(keys.valid_card_query(&keys.other_institution, "p").as_bytes()).await.expect("an answer");
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EP01"));
    assert_eq!(tier.sent().iter().sum::<u64>(), 1, "sent once: {:?}", tier.sent());
    let mut refused = 0;
    for i in 0..3 {
        refused += usage_requests(&nodes, i, Some("refused")).await;
    }
    assert_eq!(refused, 1, "one node saw it, once");
    // A frame over the server's limit: an error frame (EF02), not retried either.
    let big = format!(r#"{{"MedicalInstitutionCode":"{}","ArbitraryIdentifier":"{}"}}"#, keys.institution(), "x".repeat(70_000));
    let e = tier.lookup(big.as_bytes()).await.expect_err("too large");
    assert_eq!(e.code(), Some("EF02"), "{e}");
    assert_eq!(tier.sent().iter().sum::<u64>(), 2, "sent once: {:?}", tier.sent());

    for n in &mut nodes.nodes {
        n.kill();
    }
    let started = Instant::now();
    let e = tier.lookup(keys.valid_card_query(keys.institution(), "d").as_bytes()).await.expect_err("no node answers");
    assert!(matches!(e, ClientError::Connection(_) | ClientError::Unavailable(_)), "{e}");
    let bound = elig_client::failover::DEFAULT_NODE_TIMEOUT + failover + Duration::from_secs(2);
    assert!(started.elapsed() < bound, "failed after {:?}, within the bound {bound:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_go_to_the_node_named_and_are_not_failed_over() {
    let mut nodes = Nodes::start(3);
    let keys = &fixture().keys;
    let addrs = nodes.addrs();
    let tier = connected(nodes.tier_options(As::Operator)).await;
    let change = upsert("insurance", insurance_row("Q-FAILOVER1", &keys.card_valid_person, &keys.card_valid.0, "FO", "1"));
    let ack = tier.node(addrs[2]).await.expect("node 2").delta(&batch(1, &[change])).await.expect("applied");
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    for (i, &addr) in addrs.iter().enumerate() {
        let status = Client::connect(&nodes.options(i, As::Operator)).await.expect("connect").status().await.expect("status");
        assert_eq!(
            status.engine.delta_seq,
            u64::from(i == 2),
            "only the node named ({}) took the batch; {addr} has {}",
            addrs[2],
            status.engine.delta_seq
        );
    }
    assert_eq!(tier.first().await.expect("node 0").status().await.expect("status").engine.delta_seq, 0, "first() is node 0");
    assert_eq!(tier.sent(), [0, 0, 0], "operator commands do not go through failover");

    nodes.nodes[2].kill();
    let e = match tier.node(addrs[2]).await {
        Ok(c) => c.status().await.expect_err("node 2 is dead"),
        Err(e) => e,
    };
    assert!(matches!(e, ClientError::Connection(_) | ClientError::Connect { .. }), "an error, not another node's status: {e}");
    let status = tier.node(addrs[0]).await.expect("node 0").status().await.expect("node 0 answers");
    assert_eq!(status.engine.delta_seq, 0);
}

/// A node that refuses as not ready (`EN01`) or behind (`EN02`) is passed
/// over: every request is answered, as the real node answers it; alone, it
/// is asked again until the failover time is over, then its refusal is
/// returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_not_ready_or_behind_is_passed_over() {
    let nodes = Nodes::start(1);
    let work = Work::answered_by(&nodes).await;
    let base = nodes.options(0, As::Central);
    for code in ["EN01", "EN02"] {
        let refusing = RefusingNode::start(&nodes.pki, code);
        let tier = connected(TierOptions::new(&[refusing.addr, nodes.nodes[0].addr], &base)).await;
        for (q, want) in &work.lookups {
            assert_eq!(comparable(&tier.lookup(q).await.expect("answered")), *want, "{code}");
        }
        let (answers, summary) = tier.bulk(&work.bulk).await.expect("answered");
        assert_eq!(answers.iter().map(comparable).collect::<Vec<_>>(), work.bulk_answers, "{code}");
        assert_eq!(serde_json::to_value(summary).unwrap(), work.bulk_summary);
        assert_eq!(comparable(&tier.tickets(&work.tickets).await.expect("answered")), work.tickets_answer);
        assert!(refusing.refused() > 0, "{code}: the refusing node was asked, and passed over");
        tier.close().await;

        let failover = Duration::from_millis(800);
        let alone = connected(TierOptions { failover, ..TierOptions::new(&[refusing.addr], &base) }).await;
        let (before, started) = (refusing.refused(), Instant::now());
        let e = alone.lookup(&work.lookups[0].0).await.expect_err("refused");
        assert_eq!(e.code(), Some(code), "the node's own refusal, at the end: {e}");
        assert!(refusing.refused() - before >= 2, "{code}: asked again within the bound");
        assert!(started.elapsed() >= failover && started.elapsed() < failover * 4, "{code}: {:?}", started.elapsed());
        alone.close().await;
    }
}

/// `elig` run with the tier's certificates as `role`, arguments and input.
fn elig(nodes: &Nodes, role: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let bin = elig_tests::tier::eligd_binary().with_file_name("elig");
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p elig-client` (cargo test --workspace does)", bin.display());
    let certs = nodes.dir.path().join("certs");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env_remove("ELIG_SERVER")
        .env_remove("ELIG_NODE")
        .env("ELIG_CA", certs.join("ca.pem"))
        .env("ELIG_CERT", certs.join(format!("{role}.pem")))
        .env("ELIG_KEY", certs.join(format!("{role}.key")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run elig");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("elig output")
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "elig failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).expect("JSON")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elig_takes_several_servers_and_sends_operator_commands_to_one() {
    let nodes = Nodes::start(2);
    let keys = &fixture().keys;
    let [a, b] = [nodes.nodes[0].addr.to_string(), nodes.nodes[1].addr.to_string()];
    // An address nothing listens on.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let query = keys.valid_card_query(keys.institution(), "cli");

    // The dead node is passed over, whichever place it has.
    let out = elig(&nodes, "central", &["--server", &format!("{dead},{a},{b}"), "lookup"], &query);
    assert_eq!(json_lines(&out)[0]["MessageBody"]["QualificationValidity"], "1");
    let lines = format!("{query}\n{query}\n");
    let out = elig(&nodes, "central", &["--server", &a, "--server", &format!("{dead},{b}"), "bulk"], &lines);
    assert_eq!(json_lines(&out).len(), 2);
    // A bad entry is named; nothing is sent.
    let out = elig(&nodes, "central", &["--server", &format!("{a},{b}x"), "lookup"], &query);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("'{b}x' is not a server address")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Operator commands: the first server, or --node; never another.
    let batch_file = nodes.dir.path().join("b1.jsonl");
    let change = upsert("insurance", insurance_row("Q-FAILOVER-CLI", &keys.card_valid_person, &keys.card_valid.0, "FC", "1"));
    std::fs::write(&batch_file, batch(1, &[change])).unwrap();
    let out = elig(&nodes, "operator", &["--server", &format!("{b},{a}"), "delta", batch_file.to_str().unwrap()], "");
    assert_eq!(json_lines(&out)[0]["seq"], 1);
    let seq = |node: &str| {
        let out = elig(&nodes, "operator", &["status", "--node", node], "");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("a status report")["delta_seq"].clone()
    };
    assert_eq!((seq(&a), seq(&b)), (0.into(), 1.into()), "the batch went to the first --server only");
    let out = elig(&nodes, "operator", &["--server", &format!("{a},{b}"), "status", "--node", &format!("{a},{b}")], "");
    assert_eq!(out.status.code(), Some(2), "--node names one node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_that_is_joining_refuses_en01_and_is_passed_over() {
    // Node 0 follows a stream it cannot reach: it never catches up, so it
    // stays joining and refuses lookups EN01, as a node replaying would.
    let nodes = Nodes::start_configured(2, |i| match i {
        0 => "[feed]\nservers = [\"nats://127.0.0.1:1\"]\nconsumer = \"joining\"\nfollow_store = false\n".to_string(),
        _ => String::new(),
    });
    let work = Work::answered_by_node(&nodes, 1).await;
    let direct = Client::connect(&nodes.options(0, As::Central)).await.unwrap();
    match direct.lookup(work.lookups[0].0.as_slice()).await {
        Err(e) => assert_eq!(e.code(), Some("EN01"), "{e}"),
        Ok(a) => panic!("a joining node must not answer: {a:?}"),
    }
    direct.close().await;
    let tier = connected(nodes.tier_options(As::Central)).await;
    for (q, want) in &work.lookups {
        assert_eq!(comparable(&tier.lookup(q).await.expect("answered by the ready node")), *want);
    }
    let (answers, _) = tier.bulk(&work.bulk).await.expect("answered");
    assert_eq!(answers.iter().map(comparable).collect::<Vec<_>>(), work.bulk_answers);
    assert!(tier.sent()[0] > 0, "the joining node was asked, and passed over: {:?}", tier.sent());
    tier.close().await;
}
