//! UDP and QUIC transport settings both ends share: socket buffers, the
//! largest datagram, MTU discovery.

use std::net::UdpSocket;

use quinn::udp::UdpSocketState;

/// Buffer sizes the kernel granted. Linux reports twice what was asked
/// (it counts its bookkeeping), capped by `net.core.rmem_max` /
/// `net.core.wmem_max` unless the process may override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub recv_buffer_bytes: usize,
    pub send_buffer_bytes: usize,
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

/// A largest-UDP-payload setting (the server's `udp.max_payload`, the
/// client's `max_udp_payload`): the default when absent, else within
/// quinn's bounds; the error is the reason.
pub fn checked_max_udp_payload(v: Option<u64>) -> Result<u16, String> {
    let v = v.unwrap_or(DEFAULT_MAX_UDP_PAYLOAD.into());
    match u16::try_from(v) {
        Ok(p) if (MIN_UDP_PAYLOAD..=MAX_UDP_PAYLOAD).contains(&p) => Ok(p),
        _ => Err(format!("must be between {MIN_UDP_PAYLOAD} and {MAX_UDP_PAYLOAD}")),
    }
}

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
