//! Several nodes of one tier: a [`Tier`] keeps one connection to each node,
//! spreads requests over the live ones in turn, and retries the read-only
//! requests (lookups, bulk inquiries, ticket fetches: safe to repeat) on
//! another node when a node is lost or refuses as not ready, for up to
//! [`TierOptions::failover`]. Operator commands are never failed over: they
//! go to the node named ([`Tier::node`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), elig_client::ClientError> {
//! use elig_client::failover::{Tier, TierOptions};
//! use elig_client::ClientOptions;
//! let one = ClientOptions::from_files(
//!     "127.0.0.1:4433".parse().unwrap(), "localhost",
//!     "certs/ca.pem".as_ref(), Some(("certs/central.pem".as_ref(), "certs/central.key".as_ref())))?;
//! let servers = ["10.0.0.1:4433".parse().unwrap(), "10.0.0.2:4433".parse().unwrap()];
//! let tier = Tier::connect(&TierOptions::new(&servers, &one)).await?;
//! let answer = tier.lookup(br#"{"MedicalInstitutionCode":"3410712362",
//!     "MedicalTicket":{"PayerNumber":"12130011","RecipientNumber":"1234566","Birthdate":"19800101"}}"#).await?;
//! let status = tier.node(servers[1]).await?.status().await?;
//! # Ok(()) }
//! ```
//!
//! Each node has a task that dials it, waits for the connection to close,
//! and dials again (backing off from 100 ms to 2 s while it fails); a
//! request never waits for a dial. A node that stops answering is noticed
//! by QUIC's idle timeout ([`TierOptions::node_timeout`], keep-alives at a
//! quarter of it): its requests in flight fail as lost and are retried.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elig_wire::answer::Answer;
use elig_wire::codes;
use elig_wire::report::BulkSummary;
use tokio::task::AbortHandle;

use crate::connection::{explain, Client, ClientError, ClientOptions};
use crate::frames::ReadError;

/// How long a request is retried on other nodes, by default.
pub const DEFAULT_FAILOVER: Duration = Duration::from_secs(10);
/// How long a node may send nothing before it counts as lost, by default.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// The first pause before dialling a node again; it doubles up to [`REDIAL_MAX`].
const REDIAL_FIRST: Duration = Duration::from_millis(100);
const REDIAL_MAX: Duration = Duration::from_secs(2);
/// A node that answered `EN01` (not ready) gets no new requests for this long
/// while another node can take them.
const NOT_READY_PAUSE: Duration = Duration::from_millis(500);
/// The pause before asking a node again, and between looks for a live node.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Where the nodes of a tier are, and how long to fail over.
#[derive(Debug, Clone)]
pub struct TierOptions {
    /// One entry per node, in the order given (the first takes operator
    /// commands by default); each with its address and certificate name.
    pub nodes: Vec<ClientOptions>,
    /// How long a read-only request is retried on other nodes after it was
    /// first sent (default 10 s); zero sends it once.
    pub failover: Duration,
    /// A node that sent nothing (keep-alives included) for this long is
    /// lost, and so is a dial that takes longer (default 3 s).
    pub node_timeout: Duration,
}

impl TierOptions {
    /// The nodes at `servers`, each connected as `base` says (its `server`
    /// is replaced by each address).
    pub fn new(servers: &[SocketAddr], base: &ClientOptions) -> TierOptions {
        let nodes = servers.iter().map(|&server| ClientOptions { server, ..base.clone() }).collect();
        TierOptions { nodes, failover: DEFAULT_FAILOVER, node_timeout: DEFAULT_NODE_TIMEOUT }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The node is lost, unreachable or timed out: try another.
    Elsewhere,
    /// The node is joining (`EN01`): try another, and send it nothing new for a moment.
    NotReady,
    /// The node is behind the query's `MinimumDeltaSequence` (`EN02`): try another.
    Behind,
    /// Final: the same request would be refused anywhere (or could not
    /// even be sent); return it as it is.
    No,
}

/// Whether a failed request is worth sending to another node.
pub fn retry_of(e: &ClientError) -> Retry {
    match e {
        ClientError::Connect { .. } | ClientError::Connection(_) | ClientError::Unavailable(_) => Retry::Elsewhere,
        ClientError::Read(ReadError::Timeout(_) | ReadError::Stream(_)) => Retry::Elsewhere,
        ClientError::Refused { code, .. } => retry_of_code(code),
        ClientError::Tls(_) | ClientError::Endpoint(_) | ClientError::Protocol(_) | ClientError::Read(ReadError::Frame(_)) => Retry::No,
    }
}

/// The retryable refusal codes (`EN01`, `EN02`); every other code is final.
pub fn retry_of_code(code: &str) -> Retry {
    match code {
        codes::NOT_READY => Retry::NotReady,
        codes::BEHIND => Retry::Behind,
        _ => Retry::No,
    }
}

/// Whether an answer carries a retryable refusal (`EN02` may come as an
/// answer's `ProcessingResultCode`, in a bulk inquiry).
pub fn retry_of_answer(a: &Answer) -> Retry {
    a.message_body.processing_result_code.as_deref().map_or(Retry::No, retry_of_code)
}

/// What [`choose`] knows of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Avail {
    /// Connected.
    pub up: bool,
    /// Said `EN01` a moment ago.
    pub paused: bool,
    /// Attempts of the current request on it.
    pub tries: u32,
}

/// The node to send to: among the nodes up, those the current request
/// tried least, of these those not paused; of what is left, the
/// `start`-th in turn (`start` moves on by one per attempt, spreading
/// requests evenly over the live nodes).
pub fn choose(nodes: &[Avail], start: usize) -> Option<usize> {
    let key = |a: &Avail| (a.tries, a.paused);
    let best = nodes.iter().filter(|a| a.up).map(key).min()?;
    let candidates = || (0..nodes.len()).filter(move |&i| nodes[i].up && key(&nodes[i]) == best);
    candidates().nth(start % candidates().count())
}

/// One node: its options, its connection, what it was sent.
#[derive(Debug)]
struct Node {
    opts: ClientOptions,
    state: Mutex<NodeState>,
    sent: AtomicU64,
}

#[derive(Debug, Default)]
struct NodeState {
    /// The live connection, if any.
    client: Option<Client>,
    /// Why the node is not connected (the last dial's or loss's reason).
    down: Option<String>,
    paused_until: Option<Instant>,
}

impl Node {
    fn state(&self) -> std::sync::MutexGuard<'_, NodeState> {
        // A panic while holding this lock leaves a plain value behind: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live connection, if the node is up.
    fn client(&self) -> Option<Client> {
        self.state().client.clone().filter(|c| c.connection().close_reason().is_none())
    }

    fn avail(&self, now: Instant, tries: u32) -> Avail {
        let paused = self.state().paused_until.is_some_and(|t| t > now);
        Avail { up: self.client().is_some(), paused, tries }
    }

    fn set(&self, client: Option<Client>, down: Option<String>) {
        let mut s = self.state();
        s.client = client;
        s.down = down;
    }
}

#[derive(Debug)]
struct Inner {
    nodes: Vec<Arc<Node>>,
    next: AtomicUsize,
    failover: Duration,
    tasks: Vec<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connections to every node of a tier. Cloning shares them; requests
/// from clones run concurrently.
#[derive(Debug, Clone)]
pub struct Tier {
    inner: Arc<Inner>,
}

impl Tier {
    /// Dial every node; returns once one is connected (the others go on
    /// being dialled in the background). If none can be reached, the error
    /// of a single node as it is, or [`ClientError::Unavailable`] naming
    /// each node's reason.
    pub async fn connect(opts: &TierOptions) -> Result<Tier, ClientError> {
        if opts.nodes.is_empty() {
            return Err(ClientError::Unavailable("no server address given".into()));
        }
        let nodes: Vec<Arc<Node>> = opts
            .nodes
            .iter()
            .map(|o| {
                let opts = ClientOptions { idle_timeout: Some(opts.node_timeout), ..o.clone() };
                Arc::new(Node { opts, state: Mutex::new(NodeState::default()), sent: AtomicU64::new(0) })
            })
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(nodes.len());
        let tasks = nodes.iter().map(|n| tokio::spawn(supervise(n.clone(), opts.node_timeout, tx.clone())).abort_handle()).collect();
        drop(tx);
        let tier = Tier { inner: Arc::new(Inner { nodes, next: AtomicUsize::new(0), failover: opts.failover, tasks }) };
        let mut errors = Vec::new();
        while let Some((addr, first)) = rx.recv().await {
            match first {
                Ok(()) => return Ok(tier),
                Err(e) => errors.push((addr, e)),
            }
        }
        if errors.len() == 1 {
            return Err(errors.remove(0).1);
        }
        Err(ClientError::Unavailable(errors.iter().map(|(a, e)| named(*a, &e.to_string())).collect::<Vec<_>>().join("; ")))
    }

    /// The nodes' addresses, in the order given.
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.inner.nodes.iter().map(|n| n.opts.server).collect()
    }

    /// Which nodes are connected now, in the order of [`servers`](Self::servers).
    pub fn up(&self) -> Vec<bool> {
        self.inner.nodes.iter().map(|n| n.client().is_some()).collect()
    }

    /// Attempts sent to each node so far (retries included), in the order
    /// of [`servers`](Self::servers).
    pub fn sent(&self) -> Vec<u64> {
        self.inner.nodes.iter().map(|n| n.sent.load(Ordering::Relaxed)).collect()
    }

    /// Answer one query document; retried on another node as
    /// [`retry_of`] and [`retry_of_answer`] say.
    pub async fn lookup(&self, query: &[u8]) -> Result<Answer, ClientError> {
        self.retried(retry_of_answer, move |c: Client| async move { c.lookup(query).await }).await
    }

    /// A bulk inquiry, answered whole by one node: a failed attempt's
    /// answers are dropped and the whole inquiry is asked again on another
    /// node, so the answers never come from two nodes or twice. Retried
    /// also when an answer carries `EN01`/`EN02`.
    pub async fn bulk(&self, queries: &[Vec<u8>]) -> Result<(Vec<Answer>, BulkSummary), ClientError> {
        let again =
            |(answers, _): &(Vec<Answer>, BulkSummary)| answers.iter().map(retry_of_answer).find(|r| *r != Retry::No).unwrap_or(Retry::No);
        self.retried(again, move |c: Client| {
            let queries = queries.to_vec();
            async move { c.bulk(queries).await?.collect().await }
        })
        .await
    }

    /// A delegated-ticket fetch, the whole document from one node.
    pub async fn tickets(&self, query: &[u8]) -> Result<Answer, ClientError> {
        self.retried(retry_of_answer, move |c: Client| async move { c.tickets(query).await?.collect().await }).await
    }

    /// The node at `addr` for an operator command (or anything that must go
    /// to one node): its live connection, or a new one dialled now (an
    /// address outside the tier is dialled like its first node). Never
    /// failed over: a node that cannot be reached is an error.
    pub async fn node(&self, addr: SocketAddr) -> Result<Client, ClientError> {
        let node = self.inner.nodes.iter().find(|n| n.opts.server == addr);
        if let Some(c) = node.and_then(|n| n.client()) {
            return Ok(c);
        }
        let opts = match node {
            Some(n) => n.opts.clone(),
            None => ClientOptions { server: addr, ..self.inner.nodes[0].opts.clone() },
        };
        Client::connect(&opts).await
    }

    /// The first node given: where operator commands go by default.
    pub async fn first(&self) -> Result<Client, ClientError> {
        self.node(self.inner.nodes[0].opts.server).await
    }

    /// Close every connection politely.
    pub async fn close(&self) {
        for t in &self.inner.tasks {
            t.abort();
        }
        for n in &self.inner.nodes {
            let client = n.state().client.take();
            if let Some(c) = client {
                c.close().await;
            }
        }
    }

    /// The next node for an attempt, with its connection.
    fn pick(&self, tries: &[u32]) -> Option<(usize, Client)> {
        let now = Instant::now();
        let nodes = &self.inner.nodes;
        let view: Vec<Avail> = nodes.iter().zip(tries).map(|(n, &t)| n.avail(now, t)).collect();
        let i = choose(&view, self.inner.next.fetch_add(1, Ordering::Relaxed))?;
        nodes[i].client().map(|c| (i, c))
    }

    /// Why no node can take a request.
    fn unavailable(&self) -> ClientError {
        let reasons: Vec<String> =
            self.inner.nodes.iter().map(|n| named(n.opts.server, n.state().down.as_deref().unwrap_or("connecting"))).collect();
        ClientError::Unavailable(reasons.join("; "))
    }

    /// Run `attempt` on a node; while it fails in a way [`retry_of`] (or,
    /// for a result, `again`) calls retryable and the failover time is not
    /// over, run it again on another node. The last result is returned.
    async fn retried<T, F, Fut>(&self, again: impl Fn(&T) -> Retry, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let deadline = Instant::now() + self.inner.failover;
        let mut tries = vec![0u32; self.inner.nodes.len()];
        let mut last = None;
        loop {
            let Some((i, client)) = self.pick(&tries) else {
                if Instant::now() >= deadline {
                    return last.unwrap_or_else(|| Err(self.unavailable()));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            if tries[i] > 0 {
                // The only node up, asked again: not at once.
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            tries[i] += 1;
            let node = &self.inner.nodes[i];
            node.sent.fetch_add(1, Ordering::Relaxed);
            let result = attempt(client).await;
            let retry = match &result {
                Ok(v) => again(v),
                Err(e) => retry_of(e),
            };
            if retry == Retry::No || Instant::now() >= deadline {
                return result;
            }
            if retry == Retry::NotReady {
                node.state().paused_until = Some(Instant::now() + NOT_READY_PAUSE);
            }
            if let Err(e) = &result {
                tracing::debug!(node = %node.opts.server, error = %e, "retrying on another node");
            }
            last = Some(result);
        }
    }
}

/// A node's reason, prefixed with its address unless it names it already.
fn named(addr: SocketAddr, reason: &str) -> String {
    match reason.contains(&addr.to_string()) {
        true => reason.to_string(),
        false => format!("{addr}: {reason}"),
    }
}

/// Keep one node connected: dial, wait for the connection to close, dial
/// again, backing off while dials fail. The first dial's outcome goes to
/// `first`.
async fn supervise(node: Arc<Node>, node_timeout: Duration, first: tokio::sync::mpsc::Sender<(SocketAddr, Result<(), ClientError>)>) {
    let mut first = Some(first);
    let mut backoff = REDIAL_FIRST;
    loop {
        let dial = tokio::time::timeout(node_timeout + Duration::from_secs(1), Client::connect(&node.opts)).await;
        let dial = dial.unwrap_or_else(|_| {
            Err(ClientError::Connect { addr: node.opts.server, message: format!("no handshake within {node_timeout:?}") })
        });
        match dial {
            Ok(client) => {
                let conn = client.connection().clone();
                node.set(Some(client), None);
                if let Some(tx) = first.take() {
                    let _ = tx.send((node.opts.server, Ok(()))).await;
                }
                let since = Instant::now();
                let reason = explain(&conn.closed().await);
                tracing::info!(node = %node.opts.server, %reason, "node connection lost; dialling again");
                node.set(None, Some(reason));
                // A connection closed at once (a refused role) is not dialled in a loop.
                backoff = if since.elapsed() > Duration::from_secs(1) { REDIAL_FIRST } else { (backoff * 2).min(REDIAL_MAX) };
            }
            Err(e) => {
                node.set(None, Some(e.to_string()));
                if let Some(tx) = first.take() {
                    let _ = tx.send((node.opts.server, Err(e))).await;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REDIAL_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(tries: u32) -> Avail {
        Avail { up: true, paused: false, tries }
    }

    #[test]
    fn requests_go_round_robin_over_live_nodes() {
        let nodes = [up(0), up(0), up(0)];
        let picks: Vec<_> = (0..6).map(|s| choose(&nodes, s).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // A node down is skipped: the live ones share its turns.
        let nodes = [up(0), Avail::default(), up(0)];
        let picks: Vec<_> = (0..6).map(|s| choose(&nodes, s).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2, 0, 2]);
        assert_eq!(choose(&[Avail::default(); 3], 0), None, "no node up");
        assert_eq!(choose(&[], 0), None);
        assert_eq!(choose(&nodes, usize::MAX), Some(2), "the turn counter may wrap");
    }

    #[test]
    fn a_retry_goes_to_a_node_not_tried_then_not_paused() {
        // Node 1 failed this request: the retry goes elsewhere whatever the turn.
        assert_eq!(choose(&[up(0), up(1), up(0)], 1), Some(2));
        assert_eq!(choose(&[up(1), up(1), up(0)], 0), Some(2));
        // Every node tried once: again, the least tried first.
        assert_eq!(choose(&[up(2), up(1), up(2)], 0), Some(1));
        // A node that said "not ready" a moment ago takes requests only when no other can.
        let paused = Avail { paused: true, ..up(0) };
        assert_eq!(choose(&[paused, up(0)], 0), Some(1));
        assert_eq!(choose(&[paused, Avail::default()], 1), Some(0));
        // The only node up is asked again.
        assert_eq!(choose(&[up(3), Avail::default()], 1), Some(0));
    }

    #[test]
    fn only_lost_nodes_and_not_ready_or_behind_are_retried() {
        let refused = |code: &str| ClientError::Refused { code: code.into(), message: "m".into() };
        assert_eq!(retry_of(&refused(codes::NOT_READY)), Retry::NotReady);
        assert_eq!(retry_of(&refused(codes::BEHIND)), Retry::Behind);
        for code in
            [codes::PERMISSION, codes::BULK_LIMIT, codes::BULK_COUNT, codes::MALFORMED_FRAME, codes::TIMEOUT, codes::INTERNAL, "EQ01"]
        {
            assert_eq!(retry_of(&refused(code)), Retry::No, "{code}");
        }
        let addr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(retry_of(&ClientError::Connect { addr, message: "timed out".into() }), Retry::Elsewhere);
        assert_eq!(retry_of(&ClientError::Connection("the connection timed out".into())), Retry::Elsewhere);
        assert_eq!(retry_of(&ClientError::Read(ReadError::Timeout(Duration::from_secs(1)))), Retry::Elsewhere);
        assert_eq!(retry_of(&ClientError::Protocol("bad payload".into())), Retry::No);
        let frame = elig_wire::frame::FrameError::TooLarge { len: 10, max: 1 };
        assert_eq!(retry_of(&ClientError::Read(ReadError::Frame(frame))), Retry::No);
        assert_eq!(retry_of(&ClientError::Endpoint(std::io::Error::from(std::io::ErrorKind::AddrInUse))), Retry::No);
    }

    #[test]
    fn answers_with_en01_or_en02_are_retried_others_returned() {
        let mut a = Answer::default();
        assert_eq!(retry_of_answer(&a), Retry::No, "a normal answer");
        for (code, retry) in
            [("EQ04", Retry::No), ("EB01", Retry::No), ("EC01", Retry::No), ("EN01", Retry::NotReady), ("EN02", Retry::Behind)]
        {
            a.message_body.processing_result_status = "2".into();
            a.message_body.processing_result_code = Some(code.into());
            assert_eq!(retry_of_answer(&a), retry, "{code}");
        }
    }

    #[test]
    fn reasons_name_their_node_once() {
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(named(addr, "cannot connect to 127.0.0.1:7: timed out"), "cannot connect to 127.0.0.1:7: timed out");
        assert_eq!(named(addr, "the server closed the connection"), "127.0.0.1:7: the server closed the connection");
    }

    #[test]
    fn options_name_every_node() {
        let base = ClientOptions::new("127.0.0.1:1".parse().unwrap(), "localhost", Vec::new(), None);
        let servers: Vec<SocketAddr> = ["127.0.0.1:10".parse().unwrap(), "127.0.0.1:11".parse().unwrap()].into();
        let t = TierOptions::new(&servers, &base);
        assert_eq!(t.nodes.iter().map(|n| n.server).collect::<Vec<_>>(), servers);
        assert_eq!((t.failover, t.node_timeout), (DEFAULT_FAILOVER, DEFAULT_NODE_TIMEOUT));
    }
}
