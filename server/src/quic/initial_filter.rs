//! The server's UDP socket as quinn sees it, with one addition: Initial
//! packets from source sockets that [`crate::quic::admission`] found ignoring
//! their Retries are dropped here, before quinn decrypts and queues them.
//! Under a flood of Initials from one socket that intake, not the Retry,
//! was most of the cost (about 135 µs a datagram in a debug build): past
//! its first few Retries such a flood now costs a hash lookup a datagram.
//!
//! Only long-header Initial packets are dropped; packets of established
//! connections (short header) pass whatever their source. Nothing is
//! looked up while no socket is blocked (one atomic load a receive).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Source sockets whose Initials are dropped, each until its expiry.
#[derive(Debug, Default)]
pub struct Blocked {
    any: AtomicBool,
    /// Initials dropped so far.
    dropped: AtomicU64,
    until: Mutex<HashMap<SocketAddr, Instant>>,
}

/// Blocked sockets kept at most; past this the expired ones go, and if
/// none has, no more are added (their Initials then cost an `Ignore`).
const MAX_BLOCKED: usize = 4096;

impl Blocked {
    /// Drop Initials from `addr` until `until`.
    pub fn block(&self, addr: SocketAddr, until: Instant) {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_BLOCKED && !map.contains_key(&addr) {
            let now = Instant::now();
            map.retain(|_, t| *t > now);
            if map.len() >= MAX_BLOCKED {
                return;
            }
        }
        map.insert(addr, until);
        self.any.store(true, Ordering::Release);
    }

    /// Initials dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether an Initial from `addr` is dropped now.
    fn drops(&self, addr: &SocketAddr, now: Instant) -> bool {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(addr) {
            Some(t) if *t > now => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(_) => {
                map.remove(addr);
                if map.is_empty() {
                    self.any.store(false, Ordering::Release);
                }
                false
            }
            None => false,
        }
    }
}

/// A socket that drops [`Blocked`] sources' Initials on receive.
pub struct FilteredSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    blocked: Arc<Blocked>,
}

impl fmt::Debug for FilteredSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilteredSocket").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl FilteredSocket {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, blocked: Arc<Blocked>) -> FilteredSocket {
        FilteredSocket { inner, blocked }
    }
}

/// A QUIC long-header Initial packet (RFC 9000 section 17.2.2): header form
/// and fixed bits set, type 0.
fn is_initial(first: u8) -> bool {
    first & 0xf0 == 0xc0
}

/// Receives in a row that may be all dropped before the task yields.
const MAX_DROPPED_RECEIVES: usize = 64;

impl AsyncUdpSocket for FilteredSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        for _ in 0..MAX_DROPPED_RECEIVES {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            if !self.blocked.any.load(Ordering::Acquire) {
                return Poll::Ready(Ok(n));
            }
            let now = Instant::now();
            let mut kept = 0;
            for i in 0..n {
                let m = meta[i];
                if m.len > 0 && is_initial(bufs[i][0]) && self.blocked.drops(&m.addr, now) {
                    continue;
                }
                if kept != i {
                    let (to, from) = bufs.split_at_mut(i);
                    to[kept][..m.len].copy_from_slice(&from[0][..m.len]);
                    meta[kept] = m;
                }
                kept += 1;
            }
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
        // A long run of dropped datagrams: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_expire_and_are_bounded() {
        let b = Blocked::default();
        let (a, t0) = ("127.0.0.1:5000".parse().unwrap(), Instant::now());
        assert!(!b.any.load(Ordering::Acquire));
        b.block(a, t0 + std::time::Duration::from_secs(1));
        assert!(b.drops(&a, t0));
        assert!(!b.drops(&"127.0.0.1:5001".parse().unwrap(), t0));
        assert!(!b.drops(&a, t0 + std::time::Duration::from_secs(2)), "expired");
        assert!(!b.any.load(Ordering::Acquire), "nothing blocked: no lookups");
        for port in 0..(MAX_BLOCKED as u16 + 10) {
            b.block(SocketAddr::new([10, 0, 0, 1].into(), port), t0 + std::time::Duration::from_secs(60));
        }
        assert_eq!(b.until.lock().unwrap().len(), MAX_BLOCKED);
        assert!(is_initial(0xc3) && !is_initial(0x40) && !is_initial(0xe0));
    }
}
