//! The server's UDP socket, bound here rather than by quinn so that its
//! kernel buffers can be sized: under a bulk inquiry the default receive
//! buffer (about 200 KiB) overflowed and the client's packets were dropped
//! (server/BENCH.md, `UdpRcvbufErrors`), which costs retransmissions.

use std::net::{SocketAddr, UdpSocket};

use quinn::udp::UdpSocketState;

use crate::config::Udp;

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

/// Bind `addr` and ask for the configured buffers. A buffer the kernel
/// refuses outright is logged, not fatal: the socket works, only slower.
pub fn bind(addr: SocketAddr, udp: &Udp) -> Result<(UdpSocket, Granted), UdpError> {
    let socket = UdpSocket::bind(addr).map_err(|source| UdpError::Bind { addr, source })?;
    let state = UdpSocketState::new((&socket).into()).map_err(|source| UdpError::Socket { addr, source })?;
    if let Err(e) = state.set_recv_buffer_size((&socket).into(), udp.recv_buffer_bytes) {
        tracing::warn!(%addr, bytes = udp.recv_buffer_bytes, error = %e, "cannot set the UDP receive buffer");
    }
    if let Err(e) = state.set_send_buffer_size((&socket).into(), udp.send_buffer_bytes) {
        tracing::warn!(%addr, bytes = udp.send_buffer_bytes, error = %e, "cannot set the UDP send buffer");
    }
    let granted = Granted {
        recv_buffer_bytes: state.recv_buffer_size((&socket).into()).map_err(|source| UdpError::Socket { addr, source })?,
        send_buffer_bytes: state.send_buffer_size((&socket).into()).map_err(|source| UdpError::Socket { addr, source })?,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_asked_for_and_a_taken_port_is_a_clear_error() {
        let asked = Udp { recv_buffer_bytes: 128 << 10, send_buffer_bytes: 96 << 10 };
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
