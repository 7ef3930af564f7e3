//! The server's UDP socket, bound here rather than by quinn so that its
//! kernel buffers can be sized: under a bulk inquiry the default receive
//! buffer (about 200 KiB) overflowed and the client's packets were dropped
//! (server/BENCH.md, `UdpRcvbufErrors`), which costs retransmissions.

use std::net::{SocketAddr, UdpSocket};

pub use elig_client::udp::{
    discover_mtu, endpoint_config, size_buffers, Granted, DEFAULT_MAX_UDP_PAYLOAD, GSO_SAFE_PAYLOAD, MAX_UDP_PAYLOAD, MIN_UDP_PAYLOAD,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("UDP socket on {addr}: {source}")]
    Socket { addr: SocketAddr, source: std::io::Error },
}

/// How the kernel picks a worker's socket for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Steering {
    /// By the connection ID (the BPF program): connections survive a new client address.
    #[default]
    ConnectionId,
    /// By the kernel's hash of the addresses.
    Hash,
}

impl Steering {
    pub fn parse(s: &str) -> Option<Steering> {
        match s {
            "connection_id" => Some(Steering::ConnectionId),
            "hash" => Some(Steering::Hash),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Steering::ConnectionId => "connection_id",
            Steering::Hash => "hash",
        }
    }
}

/// Settings of the server's UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    /// Receive buffer asked of the kernel: a burst of requests (a bulk
    /// inquiry's items) overflowed the default ~200 KiB and was dropped.
    pub recv_buffer_bytes: usize,
    pub send_buffer_bytes: usize,
    /// Largest UDP payload MTU discovery may reach (and this endpoint accepts).
    pub max_payload: u16,
    /// How packets find their worker ([`super::workers`]).
    pub steering: Steering,
}

/// Default UDP socket buffers asked for, each way.
pub const DEFAULT_UDP_BUFFER_BYTES: usize = 4 << 20;

impl Default for Udp {
    fn default() -> Udp {
        Udp {
            recv_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            send_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            max_payload: DEFAULT_MAX_UDP_PAYLOAD,
            steering: Steering::default(),
        }
    }
}

/// Bind `addr` and ask for the configured buffers. A buffer the kernel
/// refuses outright is logged, not fatal: the socket works, only slower.
pub fn bind(addr: SocketAddr, udp: &Udp) -> Result<(UdpSocket, Granted), UdpError> {
    let socket = UdpSocket::bind(addr).map_err(|source| UdpError::Bind { addr, source })?;
    let granted = sized(&socket, addr, udp)?;
    Ok((socket, granted))
}

/// [`bind`] with `SO_REUSEPORT`: one socket of a worker group ([`super::workers`]).
pub fn bind_reusing_port(addr: SocketAddr, udp: &Udp) -> Result<UdpSocket, UdpError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = |source| UdpError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(bind)?;
    socket.set_reuse_port(true).map_err(bind)?;
    socket.bind(&addr.into()).map_err(bind)?;
    let socket: UdpSocket = socket.into();
    sized(&socket, addr, udp)?;
    Ok(socket)
}

fn sized(socket: &UdpSocket, addr: SocketAddr, udp: &Udp) -> Result<Granted, UdpError> {
    let granted = size_buffers(socket, udp.recv_buffer_bytes, udp.send_buffer_bytes).map_err(|source| UdpError::Socket { addr, source })?;
    // Linux doubles the size asked for; less than asked means a cap.
    if granted.recv_buffer_bytes < udp.recv_buffer_bytes || granted.send_buffer_bytes < udp.send_buffer_bytes {
        tracing::warn!(
            %addr, asked_recv = udp.recv_buffer_bytes, granted_recv = granted.recv_buffer_bytes,
            asked_send = udp.send_buffer_bytes, granted_send = granted.send_buffer_bytes,
            "the kernel granted smaller UDP buffers than configured; raise net.core.rmem_max / net.core.wmem_max"
        );
    } else {
        tracing::info!(%addr, recv = granted.recv_buffer_bytes, send = granted.send_buffer_bytes, "UDP socket buffers");
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_asked_for_and_a_taken_port_is_a_clear_error() {
        let asked = Udp { recv_buffer_bytes: 128 << 10, send_buffer_bytes: 96 << 10, ..Udp::default() };
        let (socket, granted) = bind("127.0.0.1:0".parse().unwrap(), &asked).unwrap();
        // Every Linux default rmem_max/wmem_max allows these; the kernel doubles them.
        assert!(granted.recv_buffer_bytes >= asked.recv_buffer_bytes, "{granted:?}");
        assert!(granted.send_buffer_bytes >= asked.send_buffer_bytes, "{granted:?}");
        let addr = socket.local_addr().unwrap();
        let err = bind(addr, &asked).unwrap_err();
        assert!(matches!(err, UdpError::Bind { .. }));
        assert!(err.to_string().starts_with(&format!("cannot bind UDP {addr}: ")), "{err}");
    }
}
