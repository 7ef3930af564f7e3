//! Which connection attempts get a handshake: the defence against a flood
//! of QUIC Initial packets (issue 12). Plain code, no quinn types: the
//! accept loop asks [`Admission::decide`] for every `Incoming` and reports
//! each admitted handshake's end with [`Admission::done`].
//!
//! A crafted Initial costs its sender one datagram and the server a whole
//! handshake (TLS state, a certificate flight, retransmissions until a
//! timeout). So, in order:
//!
//! 1. Past `max_connections` (handshakes included) an attempt is refused.
//! 2. A source address that has not proved it receives what we send
//!    (`remote_address_validated`) is sent a stateless Retry when handshakes
//!    pile up (`retry_after_handshakes` in progress, 0: always) or when its IP
//!    already has `max_handshakes_per_address` unvalidated handshakes in
//!    progress. A Retry costs no state; an honest client answers it with the
//!    token at once (one round trip more), a spoofing flood cannot.
//! 3. A validated address gets at most `max_handshakes_per_address`
//!    handshakes in progress per IP; more are refused.
//! 4. One source socket (IP and port) that was sent [`RETRIES_PER_SOCKET`]
//!    Retries within [`RETRY_WINDOW`] and still sends unvalidated Initials
//!    is not answering them: its further attempts are ignored (no packet
//!    sent, nothing kept) until the window passes. An honest client answers
//!    its one Retry with a validated attempt; a flood from one socket stops
//!    costing the server a Retry per datagram.
//!
//! Every admitted handshake ends within `handshake_timeout_secs`, so what a
//! flood holds is bounded in count and in time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Retries one source socket is sent within [`RETRY_WINDOW`] before its
/// unvalidated attempts are ignored.
pub const RETRIES_PER_SOCKET: u32 = 4;
pub const RETRY_WINDOW: Duration = Duration::from_secs(1);
/// Sockets whose Retries are remembered; past this, expired ones are
/// forgotten (and if none has expired, the oldest window is cut short).
const RETRY_MEMORY: usize = 4096;

/// The settings [`Admission`] applies (from `Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub max_connections: usize,
    /// Handshakes in progress from which unvalidated attempts get a Retry (0: always).
    pub retry_after_handshakes: usize,
    pub max_handshakes_per_address: usize,
}

/// What to do with one connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the handshake; hand this back to [`Admission::done`] when it ends.
    Accept(Admitted),
    /// Answer with a stateless Retry (address validation).
    Retry,
    /// Refuse it (a CONNECTION_REFUSED close).
    Refuse(Refused),
    /// Drop it without an answer: its socket ignores our Retries.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` reached.
    Limit,
    /// `max_handshakes_per_address` validated handshakes from this IP.
    Address,
}

impl Refused {
    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Limit => "limit",
            Refused::Address => "address_limit",
        }
    }
}

impl Decision {
    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept(_))
    }
}

/// Handshakes in progress, in total and per source IP.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    handshaking: usize,
    /// (unvalidated, validated) handshakes in progress per IP.
    per_ip: HashMap<IpAddr, (usize, usize)>,
    /// Retries sent per source socket in its current window (start, count).
    retries: HashMap<SocketAddr, (Instant, u32)>,
}

/// An admitted handshake, to hand back to [`Admission::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    ip: IpAddr,
    validated: bool,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission { limits, handshaking: 0, per_ip: HashMap::new(), retries: HashMap::new() }
    }

    /// Handshakes in progress.
    pub fn handshaking(&self) -> usize {
        self.handshaking
    }

    /// Decide on an attempt from `remote`; `open_connections` counts the
    /// endpoint's connections, handshakes included.
    pub fn decide(&mut self, remote: SocketAddr, validated: bool, open_connections: usize, now: Instant) -> Decision {
        if open_connections >= self.limits.max_connections {
            return Decision::Refuse(Refused::Limit);
        }
        let ip = remote.ip();
        let (unvalidated, valid) = self.per_ip.get(&ip).copied().unwrap_or_default();
        if !validated {
            if self.handshaking >= self.limits.retry_after_handshakes || unvalidated >= self.limits.max_handshakes_per_address {
                return self.retry(remote, now);
            }
        } else if valid >= self.limits.max_handshakes_per_address {
            return Decision::Refuse(Refused::Address);
        }
        let entry = self.per_ip.entry(ip).or_default();
        if validated {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
        self.handshaking += 1;
        Decision::Accept(Admitted { ip, validated })
    }

    /// A Retry for `remote`, or `Ignore` once its socket has ignored enough of them.
    fn retry(&mut self, remote: SocketAddr, now: Instant) -> Decision {
        if self.retries.len() >= RETRY_MEMORY && !self.retries.contains_key(&remote) {
            self.retries.retain(|_, (start, _)| now.duration_since(*start) < RETRY_WINDOW);
            if self.retries.len() >= RETRY_MEMORY {
                if let Some(oldest) = self.retries.iter().min_by_key(|(_, (start, _))| *start).map(|(a, _)| *a) {
                    self.retries.remove(&oldest);
                }
            }
        }
        let (start, count) = self.retries.entry(remote).or_insert((now, 0));
        if now.duration_since(*start) >= RETRY_WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= RETRIES_PER_SOCKET {
            return Decision::Ignore;
        }
        *count += 1;
        Decision::Retry
    }

    /// An admitted handshake ended (done, failed or timed out).
    pub fn done(&mut self, a: Admitted) {
        self.handshaking = self.handshaking.saturating_sub(1);
        if let Some(entry) = self.per_ip.get_mut(&a.ip) {
            let n = if a.validated { &mut entry.1 } else { &mut entry.0 };
            *n = n.saturating_sub(1);
            if *entry == (0, 0) {
                self.per_ip.remove(&a.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_from_one_address_gets_retries_and_a_validated_client_still_gets_in() {
        let now = Instant::now();
        let mut a = Admission::new(AdmissionLimits { max_connections: 1024, retry_after_handshakes: 64, max_handshakes_per_address: 8 });
        let mut admitted = Vec::new();
        let mut retried = 0;
        for port in 0..5000u16 {
            match a.decide(SocketAddr::new([127, 0, 0, 1].into(), 10_000 + port), false, a.handshaking(), now) {
                Decision::Accept(h) => admitted.push(h),
                Decision::Retry => retried += 1,
                other => panic!("{other:?}"),
            }
        }
        // At most 8 unvalidated handshakes per IP hold state; the rest got a stateless Retry.
        assert_eq!((admitted.len(), retried), (8, 4992));
        // The honest client on the same IP, unvalidated: a Retry; validated: a handshake.
        assert_eq!(a.decide(addr("127.0.0.1:4000"), false, 8, now), Decision::Retry);
        assert!(a.decide(addr("127.0.0.1:4000"), true, 8, now).is_accept());
        // Ended handshakes give their place back.
        for h in admitted {
            a.done(h);
        }
        assert_eq!(a.handshaking(), 1);
        assert!(a.decide(addr("127.0.0.1:4001"), false, 1, now).is_accept());
    }

    #[test]
    fn a_socket_that_ignores_its_retries_is_ignored_for_a_while() {
        let mut a = Admission::new(AdmissionLimits { max_connections: 1024, retry_after_handshakes: 0, max_handshakes_per_address: 8 });
        let (t0, flood, honest) = (Instant::now(), addr("127.0.0.1:5000"), addr("127.0.0.1:5001"));
        let decisions: Vec<Decision> = (0..6).map(|_| a.decide(flood, false, 0, t0)).collect();
        assert_eq!(decisions, [[Decision::Retry; 4].as_slice(), &[Decision::Ignore; 2]].concat());
        // Another socket on the same IP still gets its Retry, then gets in validated.
        assert_eq!(a.decide(honest, false, 0, t0), Decision::Retry);
        assert!(a.decide(honest, true, 0, t0).is_accept());
        // After the window the flood socket is sent Retries again.
        assert_eq!(a.decide(flood, false, 0, t0 + RETRY_WINDOW), Decision::Retry);
        // The memory is bounded.
        for port in 0..(RETRY_MEMORY as u16 + 100) {
            a.decide(SocketAddr::new([10, 0, 0, 1].into(), port), false, 0, t0);
        }
        assert!(a.retries.len() <= RETRY_MEMORY);
    }

    #[test]
    fn many_addresses_get_retries_once_handshakes_pile_up_and_limits_refuse() {
        let now = Instant::now();
        let limits = AdmissionLimits { max_connections: 100, retry_after_handshakes: 3, max_handshakes_per_address: 2 };
        let mut a = Admission::new(limits);
        let from = |i: u8| SocketAddr::new([10, 0, 0, i].into(), 443);
        for i in 0..3 {
            assert!(a.decide(from(i), false, i as usize, now).is_accept());
        }
        assert_eq!(a.decide(from(9), false, 3, now), Decision::Retry);
        // Validated attempts are not retried, but limited per IP.
        assert!(a.decide(from(9), true, 3, now).is_accept());
        assert!(a.decide(from(9), true, 4, now).is_accept());
        assert_eq!(a.decide(from(9), true, 5, now), Decision::Refuse(Refused::Address));
        assert_eq!(a.decide(from(8), true, 100, now), Decision::Refuse(Refused::Limit));
        // 0: always retry an unvalidated address.
        let mut always = Admission::new(AdmissionLimits { retry_after_handshakes: 0, ..limits });
        assert_eq!(always.decide(from(1), false, 0, now), Decision::Retry);
        assert!(always.decide(from(1), true, 0, now).is_accept());
    }
}
