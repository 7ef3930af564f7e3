//! The async client library: one QUIC connection with a client
//! certificate, many requests on it concurrently (one stream each).
//!
//! ```no_run
//! # async fn demo() -> Result<(), elig_client::ClientError> {
//! use elig_client::{Client, ClientOptions};
//! let opts = ClientOptions::from_files(
//!     "127.0.0.1:4433".parse().unwrap(), "localhost",
//!     "certs/ca.pem".as_ref(), Some(("certs/central.pem".as_ref(), "certs/central.key".as_ref())))?;
//! let client = Client::connect(&opts).await?;
//! let answer = client.lookup(br#"{"MedicalInstitutionCode":"3410712362",
//!     "MedicalTicket":{"PayerNumber":"12130011","RecipientNumber":"1234566","Birthdate":"19800101"}}"#).await?;
//! println!("{:?}", answer.validity());
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use elig_wire::answer::{Answer, BulkConfirmUnit};
use elig_wire::codes::close;
use elig_wire::frame::{self as protocol, Frame, Kind, CLIENT_MAX_FRAME};
use elig_wire::report::{BulkSummary, DeltaAck, StatusReport, SwapResult, UsageReport};
use elig_wire::request::{BulkBegin, ErrorBody, SwapRequest};
use quinn::{Connection, ConnectionError, Endpoint, SendStream, VarInt};
use serde::de::DeserializeOwned;

use crate::frames::{self, FrameStream, ReadError};
use crate::tls::{self, Identity, TlsError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot open a local UDP socket: {0}")]
    Endpoint(std::io::Error),
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    #[error("{0}")]
    Connection(String),
    /// The server refused the request (an `Error` frame).
    #[error("refused by the server: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("reading the response: {0}")]
    Read(#[from] ReadError),
    /// No node of a [`Tier`](crate::failover::Tier) could take the request
    /// (each with its reason).
    #[error("no node is reachable: {0}")]
    Unavailable(String),
}

impl ClientError {
    /// The protocol error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Names of the TLS alerts a refused handshake reports.
fn alert_name(alert: u64) -> &'static str {
    match alert {
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "certificate revoked",
        45 => "certificate expired",
        46 => "certificate unknown",
        48 => "unknown CA",
        49 => "access denied",
        51 => "decrypt error (certificate signature does not verify)",
        116 => "certificate required",
        120 => "no application protocol",
        _ => "TLS alert",
    }
}

/// A readable account of a lost connection.
pub fn explain(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            match u32::try_from(u64::from(c.error_code)) {
                Ok(close::SHUTDOWN) => format!("the server closed the connection: {reason}"),
                Ok(close::NO_ROLE) => format!("the server refused this client certificate: {reason}"),
                _ => format!("the server closed the connection (code {}): {reason}", c.error_code),
            }
        }
        ConnectionError::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            let reason = String::from_utf8_lossy(&c.reason);
            if (0x100..0x200).contains(&code) {
                let alert = code & 0xff;
                format!(
                    "the server refused the TLS handshake: {} (alert {alert}){}; a client certificate issued by the server's CA is required",
                    alert_name(alert),
                    if reason.is_empty() { String::new() } else { format!(": {reason}") }
                )
            } else {
                format!("the server aborted the connection: {}", c)
            }
        }
        ConnectionError::TransportError(t) => {
            let code = u64::from(t.code);
            if (0x100..0x200).contains(&code) {
                format!("TLS handshake failed: {} ({})", alert_name(code & 0xff), t.reason)
            } else {
                format!("connection failed: {t}")
            }
        }
        ConnectionError::TimedOut => "the connection timed out (is the server running at that address?)".into(),
        other => format!("connection lost: {other}"),
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub server: SocketAddr,
    /// Name the server certificate must carry (the dev PKI has `localhost`).
    pub server_name: String,
    /// PEM of the CA that issued the server certificate.
    pub ca_pem: Vec<u8>,
    /// Our certificate and key; `None` connects without one (the server refuses).
    pub identity: Option<Identity>,
    /// How long to wait for each response frame.
    pub timeout: Duration,
    /// Largest UDP payload MTU discovery may reach (and we accept); the
    /// server must allow as much for datagrams to grow past 1452 bytes.
    pub max_udp_payload: u16,
    /// A connection on which nothing arrived for this long (keep-alives
    /// are sent at a quarter of it) is lost, and so is a handshake that
    /// takes longer; `None` leaves quinn's default (30 s, or the server's
    /// shorter `idle_timeout_secs`). A [`Tier`](crate::failover::Tier)
    /// sets it to notice a dead node.
    pub idle_timeout: Option<Duration>,
}

impl ClientOptions {
    pub fn new(server: SocketAddr, server_name: &str, ca_pem: Vec<u8>, identity: Option<Identity>) -> ClientOptions {
        ClientOptions {
            server,
            server_name: server_name.to_string(),
            ca_pem,
            identity,
            timeout: Duration::from_secs(60),
            max_udp_payload: crate::udp::DEFAULT_MAX_UDP_PAYLOAD,
            idle_timeout: None,
        }
    }

    /// Read the CA and (if given) the certificate and key from PEM files.
    pub fn from_files(
        server: SocketAddr,
        server_name: &str,
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<ClientOptions, ClientError> {
        let ca_pem = tls::read(ca)?;
        let identity = identity.map(|(cert, key)| Identity::load(cert, key)).transpose()?;
        Ok(ClientOptions::new(server, server_name, ca_pem, identity))
    }
}

/// How long [`Client::swap`] waits for its answer.
pub const SWAP_TIMEOUT: Duration = Duration::from_secs(3600);

/// A connection to `eligd`. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    conn: Connection,
    timeout: Duration,
}

/// The QUIC client configuration (TLS, transport) and the local address to
/// bind, shared by [`Client::connect`] and the load generator.
fn client_setup(opts: &ClientOptions) -> Result<(quinn::ClientConfig, SocketAddr), ClientError> {
    let roots = tls::roots(&opts.ca_pem, "CA certificate")?;
    let crypto = tls::quic_client(tls::client_config(roots, opts.identity.clone())?)?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    if let Some(idle) = opts.idle_timeout {
        // An hour is far inside the QUIC varint range: the conversion holds.
        let idle = idle.clamp(Duration::from_millis(100), Duration::from_secs(3600));
        transport.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
        transport.keep_alive_interval(Some((idle / 4).min(Duration::from_secs(5))));
    }
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    crate::udp::discover_mtu(&mut transport, opts.max_udp_payload);
    let mut config = quinn::ClientConfig::new(crypto);
    config.transport_config(Arc::new(transport));
    let bind: SocketAddr = match (opts.server.is_ipv4(), opts.server.ip().is_loopback()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    Ok((config, bind))
}

/// An endpoint and one connection with the client's TLS and transport
/// settings; `socket_buffers` asks the kernel for larger UDP buffers (the
/// load generator's bulk answers outrun default-sized ones; best effort).
pub async fn connect_endpoint(opts: &ClientOptions, socket_buffers: Option<usize>) -> Result<(Endpoint, Connection), ClientError> {
    let (config, bind) = client_setup(opts)?;
    let socket = std::net::UdpSocket::bind(bind).map_err(ClientError::Endpoint)?;
    if let Some(size) = socket_buffers {
        crate::udp::size_buffers(&socket, size, size).map_err(ClientError::Endpoint)?;
    }
    let endpoint_config = crate::udp::endpoint_config(opts.max_udp_payload);
    let mut endpoint = Endpoint::new(endpoint_config, None, socket, Arc::new(quinn::TokioRuntime)).map_err(ClientError::Endpoint)?;
    endpoint.set_default_client_config(config);
    let connect_error = |message: String| ClientError::Connect { addr: opts.server, message };
    let connecting = endpoint.connect(opts.server, &opts.server_name).map_err(|e| connect_error(e.to_string()))?;
    let conn = connecting.await.map_err(|e| connect_error(explain(&e)))?;
    Ok((endpoint, conn))
}

impl Client {
    pub async fn connect(opts: &ClientOptions) -> Result<Client, ClientError> {
        let (endpoint, conn) = connect_endpoint(opts, None).await?;
        Ok(Client { endpoint, conn, timeout: opts.timeout })
    }

    /// The underlying connection (diagnostics).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Move the connection to another local UDP socket, as a NAT rebinding
    /// or a change of network does; the server keeps the connection.
    pub fn rebind(&self, socket: std::net::UdpSocket) -> std::io::Result<()> {
        self.endpoint.rebind(socket)
    }

    async fn open(&self) -> Result<(SendStream, FrameStream), ClientError> {
        let (send, recv) = self.conn.open_bi().await.map_err(|e| ClientError::Connection(explain(&e)))?;
        Ok((send, FrameStream::new(recv)))
    }

    fn lost(&self, e: impl std::fmt::Display) -> ClientError {
        match self.conn.close_reason() {
            Some(reason) => ClientError::Connection(explain(&reason)),
            None => ClientError::Connection(format!("stream failed: {e}")),
        }
    }

    async fn write(&self, send: &mut SendStream, bytes: &[u8]) -> Result<(), ClientError> {
        send.write_all(bytes).await.map_err(|e| self.lost(e))?;
        send.finish().map_err(|e| self.lost(e))
    }

    async fn next(&self, recv: &mut FrameStream) -> Result<Option<Frame>, ClientError> {
        self.next_within(recv, self.timeout).await
    }

    async fn next_within(&self, recv: &mut FrameStream, timeout: Duration) -> Result<Option<Frame>, ClientError> {
        match recv.next_frame(CLIENT_MAX_FRAME, timeout).await {
            Ok(f) => Ok(f),
            Err(ReadError::Stream(e)) => Err(self.lost(e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Send one request frame, expect exactly one response frame of `want`.
    async fn one<T: DeserializeOwned>(&self, kind: Kind, payload: &[u8], want: Kind) -> Result<T, ClientError> {
        self.one_within(kind, payload, want, self.timeout).await
    }

    async fn one_within<T: DeserializeOwned>(&self, kind: Kind, payload: &[u8], want: Kind, timeout: Duration) -> Result<T, ClientError> {
        let (mut send, mut recv) = self.open().await?;
        // A server that refuses from the frame header (too large, not
        // allowed) stops reading: its error frame explains a failed write.
        let written = self.write(&mut send, &protocol::encode(kind, payload)).await;
        match self.next_within(&mut recv, timeout).await {
            Ok(Some(f)) if f.kind == want => {
                recv.finish(frames::FINISH_WAIT).await;
                parse(&f)
            }
            Ok(Some(f)) => Err(unexpected(&f, want)),
            Ok(None) => {
                Err(written.err().unwrap_or_else(|| ClientError::Protocol("the server finished the stream without a response".into())))
            }
            Err(e) => Err(written.err().unwrap_or(e)),
        }
    }

    /// Answer one query document (`contract.md` section 3).
    pub async fn lookup(&self, query: &[u8]) -> Result<Answer, ClientError> {
        self.one(Kind::Lookup, query, Kind::Answer).await
    }

    /// A bulk inquiry: the answers stream back in order as the server
    /// computes them, then a summary.
    pub async fn bulk(&self, queries: Vec<Vec<u8>>) -> Result<BulkResults, ClientError> {
        let (mut send, recv) = self.open().await?;
        let header = serde_json::to_vec(&BulkBegin { items: queries.len() as u64 }).unwrap_or_default();
        // Write while the caller reads: the server answers as items arrive,
        // and flow control would stall a writer that waited for the end.
        let writer = tokio::spawn(async move {
            let mut buf = protocol::encode(Kind::BulkBegin, &header);
            for q in &queries {
                protocol::encode_into(&mut buf, Kind::BulkItem, q);
                if buf.len() >= 64 * 1024 {
                    send.write_all(&buf).await?;
                    buf.clear();
                }
            }
            send.write_all(&buf).await?;
            let _ = send.finish();
            Ok::<(), quinn::WriteError>(())
        });
        Ok(BulkResults { items: ItemStream::new(self.clone(), recv, Kind::Answer, "bulk"), writer })
    }

    /// A delegated-ticket fetch: one unit per ticket, then the summary.
    /// `query` is a `DelegatedTickets` query document.
    pub async fn tickets(&self, query: &[u8]) -> Result<TicketResults, ClientError> {
        let (mut send, recv) = self.open().await?;
        self.write(&mut send, &protocol::encode(Kind::Tickets, query)).await?;
        Ok(TicketResults { items: ItemStream::new(self.clone(), recv, Kind::Unit, "ticket") })
    }

    /// The ticket query for `institution` (omit it with an institution
    /// certificate) and `month` (`YYYYMM`).
    pub fn tickets_query(institution: Option<&str>, month: &str, date: Option<&str>) -> Vec<u8> {
        let mut q = serde_json::Map::new();
        if let Some(i) = institution {
            q.insert("MedicalInstitutionCode".into(), i.into());
        }
        if let Some(d) = date {
            q.insert("QualificationConfirmationDate".into(), d.into());
        }
        q.insert("DelegatedTickets".into(), serde_json::json!({ "MedicalTreatmentMonth": month }));
        serde_json::to_vec(&q).unwrap_or_default()
    }

    /// Operator: the server's status.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        self.one(Kind::Status, b"", Kind::Report).await
    }

    /// Operator: usage counts per institution and lookup kind.
    pub async fn usage(&self) -> Result<UsageReport, ClientError> {
        self.one(Kind::Usage, b"", Kind::Report).await
    }

    /// Operator: send one delta batch (JSON Lines, `contract.md` section 2)
    /// and wait for its acknowledgement: once it returns `Ok`, the batch is
    /// durable and visible. A refused batch is [`ClientError::Refused`]
    /// (`ED01` bad line, `ED02` sequence gap, `ED03` not durable).
    pub async fn delta(&self, batch: &[u8]) -> Result<DeltaAck, ClientError> {
        self.one(Kind::Delta, batch, Kind::Report).await
    }

    /// Operator: swap in the snapshot in `snapshot_dir`, an absolute path
    /// on the server. Waits up to [`SWAP_TIMEOUT`]: the server verifies and
    /// pre-faults the whole snapshot first.
    pub async fn swap(&self, snapshot_dir: &str) -> Result<SwapResult, ClientError> {
        let payload = serde_json::to_vec(&SwapRequest { snapshot_dir: snapshot_dir.to_string() }).unwrap_or_default();
        self.one_within(Kind::Swap, &payload, Kind::Report, SWAP_TIMEOUT.max(self.timeout)).await
    }

    /// Send raw bytes on a new stream, finish it, and return every frame
    /// the server sent back (diagnostics and protocol tests).
    pub async fn exchange_raw(&self, bytes: &[u8]) -> Result<Vec<Frame>, ClientError> {
        let (mut send, mut recv) = self.open().await?;
        // The server may stop reading after refusing; that is not an error here.
        let _ = send.write_all(bytes).await;
        let _ = send.finish();
        let mut frames = Vec::new();
        while let Some(f) = self.next(&mut recv).await? {
            frames.push(f);
        }
        Ok(frames)
    }

    /// Close the connection politely.
    pub async fn close(&self) {
        self.conn.close(VarInt::from_u32(0), b"client done");
        self.endpoint.wait_idle().await;
    }
}

fn parse<T: DeserializeOwned>(f: &Frame) -> Result<T, ClientError> {
    serde_json::from_slice(&f.payload).map_err(|e| ClientError::Protocol(format!("bad '{}' payload: {e}", f.kind.name())))
}

fn unexpected(f: &Frame, want: Kind) -> ClientError {
    if f.kind == Kind::Error {
        return match serde_json::from_slice::<ErrorBody>(&f.payload) {
            Ok(e) => ClientError::Refused { code: e.code, message: e.message },
            Err(e) => ClientError::Protocol(format!("unreadable error frame: {e}")),
        };
    }
    ClientError::Protocol(format!("expected a '{}' frame, got '{}'", want.name(), f.kind.name()))
}

/// Frames of one item kind, streamed until a summary frame: the shape of
/// a bulk inquiry's answers and a ticket fetch's units.
#[derive(Debug)]
struct ItemStream<S> {
    client: Client,
    recv: FrameStream,
    item: Kind,
    /// For errors: "bulk" or "ticket".
    what: &'static str,
    summary: Option<S>,
}

impl<S: DeserializeOwned> ItemStream<S> {
    fn new(client: Client, recv: FrameStream, item: Kind, what: &'static str) -> Self {
        ItemStream { client, recv, item, what, summary: None }
    }

    async fn next<I: DeserializeOwned>(&mut self) -> Result<Option<I>, ClientError> {
        if self.summary.is_some() {
            return Ok(None);
        }
        match self.client.next(&mut self.recv).await? {
            Some(f) if f.kind == self.item => parse(&f).map(Some),
            Some(f) if f.kind == Kind::Summary => {
                self.summary = Some(parse(&f)?);
                Ok(None)
            }
            Some(f) => Err(unexpected(&f, self.item)),
            None => Err(ClientError::Protocol(format!("the {} stream ended before its summary", self.what))),
        }
    }

    async fn collect<I: DeserializeOwned>(&mut self) -> Result<(Vec<I>, S), ClientError> {
        let mut items = Vec::new();
        while let Some(i) = self.next().await? {
            items.push(i);
        }
        let summary = self.summary.take().ok_or_else(|| ClientError::Protocol("no summary".into()))?;
        Ok((items, summary))
    }
}

/// The answers of a bulk inquiry, as they arrive.
#[derive(Debug)]
pub struct BulkResults {
    items: ItemStream<BulkSummary>,
    writer: tokio::task::JoinHandle<Result<(), quinn::WriteError>>,
}

impl BulkResults {
    /// The next answer, in query order; `None` after the last (then
    /// [`summary`](Self::summary) is set).
    pub async fn next(&mut self) -> Result<Option<Answer>, ClientError> {
        self.items.next().await
    }

    pub fn summary(&self) -> Option<&BulkSummary> {
        self.items.summary.as_ref()
    }

    /// Every answer, then the summary.
    pub async fn collect(mut self) -> Result<(Vec<Answer>, BulkSummary), ClientError> {
        self.items.collect().await
    }
}

impl Drop for BulkResults {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// The units of a delegated-ticket fetch, as they arrive.
#[derive(Debug)]
pub struct TicketResults {
    items: ItemStream<Answer>,
}

impl TicketResults {
    /// The next unit; `None` after the last (then the summary is set).
    pub async fn next(&mut self) -> Result<Option<BulkConfirmUnit>, ClientError> {
        self.items.next().await
    }

    /// The answer without its units: header with counts, body status (an
    /// error answer if the query was refused).
    pub fn summary(&self) -> Option<&Answer> {
        self.items.summary.as_ref()
    }

    /// The whole answer document, units in place.
    pub async fn collect(mut self) -> Result<Answer, ClientError> {
        let (units, mut answer) = self.items.collect().await?;
        answer.message_body.bulk_confirm_unit_list = units;
        Ok(answer)
    }
}
