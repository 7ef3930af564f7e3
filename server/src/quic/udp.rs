//! The server's UDP socket, bound here rather than by quinn so that its
//! kernel buffers can be sized: under a bulk inquiry the default receive
//! buffer (about 200 KiB) overflowed and the client's packets were dropped
//! (server/BENCH.md, `UdpRcvbufErrors`), which costs retransmissions.

use std::net::{SocketAddr, UdpSocket};

use quinn::udp::UdpSocketState;

/// Buffer sizes the kernel granted. Linux reports twice what was asked
/// (it counts its bookkeeping), capped by `net.core.rmem_max` /
/// `net.core.wmem_max` unless the process may override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub recv_buffer_bytes: usize,
    pub send_buffer_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("UDP socket on {addr}: {source}")]
    Socket { addr: SocketAddr, source: std::io::Error },
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
}

/// Default UDP socket buffers asked for, each way.
pub const DEFAULT_UDP_BUFFER_BYTES: usize = 4 << 20;

impl Default for Udp {
    fn default() -> Udp {
        Udp {
            recv_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            send_buffer_bytes: DEFAULT_UDP_BUFFER_BYTES,
            max_payload: DEFAULT_MAX_UDP_PAYLOAD,
        }
    }
}

/// Bind `addr` and ask for the configured buffers. A buffer the kernel
/// refuses outright is logged, not fatal: the socket works, only slower.
pub fn bind(addr: SocketAddr, udp: &Udp) -> Result<(UdpSocket, Granted), UdpError> {
    let socket = UdpSocket::bind(addr).map_err(|source| UdpError::Bind { addr, source })?;
    let granted =
        size_buffers(&socket, udp.recv_buffer_bytes, udp.send_buffer_bytes).map_err(|source| UdpError::Socket { addr, source })?;
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
    Ok((socket, granted))
}

/// Ask the kernel for these buffer sizes on `socket` (the server's, and the
/// load generator's); what it granted. A size it refuses is logged, not
/// fatal: the socket works, only slower.
pub fn size_buffers(socket: &UdpSocket, recv: usize, send: usize) -> std::io::Result<Granted> {
    let state = UdpSocketState::new(socket.into())?;
    if let Err(e) = state.set_recv_buffer_size(socket.into(), recv) {
        tracing::warn!(bytes = recv, error = %e, "cannot set the UDP receive buffer");
    }
    if let Err(e) = state.set_send_buffer_size(socket.into(), send) {
        tracing::warn!(bytes = send, error = %e, "cannot set the UDP send buffer");
    }
    Ok(Granted { recv_buffer_bytes: state.recv_buffer_size(socket.into())?, send_buffer_bytes: state.send_buffer_size(socket.into())? })
}

/// The largest UDP payload by default: quinn's own MTU discovery bound,
/// which any Ethernet path carries (1500 bytes less IPv6 and UDP headers).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1452;
/// QUIC's smallest datagram, and the largest a UDP datagram can carry.
pub const MIN_UDP_PAYLOAD: u16 = 1200;
pub const MAX_UDP_PAYLOAD: u16 = 65527;

/// Endpoint settings for `max_payload`: the largest datagram this endpoint
/// accepts, a transport parameter that bounds the peer's MTU discovery.
pub fn endpoint_config(max_payload: u16) -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    // Clamped to quinn's bounds, so it cannot fail (settings are validated).
    let _ = config.max_udp_payload_size(max_payload.clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD));
    config
}

/// Let MTU discovery probe up to `max_payload`. Packets still start at
/// QUIC's 1200 bytes and grow only as far as probes get through, and a
/// black hole drops them back, so a large bound is safe where the path
/// is smaller; it helps only where the path is larger (loopback, jumbo
/// frames). It is not free above [`GSO_SAFE_PAYLOAD`] (6,550 bytes): that
/// turns segmentation offload off, one `sendmsg` per datagram whatever the
/// path, so 9000-byte jumbo frames cost GSO; measure before setting it.
pub fn discover_mtu(transport: &mut quinn::TransportConfig, max_payload: u16) {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(max_payload);
    transport.mtu_discovery_config(Some(mtu));
    // quinn hands the kernel up to 10 datagrams in one GSO send, which
    // Linux caps at 64 KiB in all: a larger batch fails with EMSGSIZE and
    // quinn drops it silently (it expects that only of MTU probes).
    if usize::from(max_payload) > GSO_SAFE_PAYLOAD {
        transport.enable_segmentation_offload(false);
    }
}

/// The largest payload of which quinn's GSO batches (10 datagrams) fit in
/// the kernel's 64 KiB limit on one send.
pub const GSO_SAFE_PAYLOAD: usize = 65_507 / 10;

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
