//! One endpoint per core (`workers`): each worker is a thread with its own
//! current-thread runtime and its own UDP socket on the listen address, all
//! the sockets in one `SO_REUSEPORT` group, sharing one engine.
//!
//! The kernel must hand every packet of a connection to the worker that
//! owns it, also after the client's address changes (NAT rebinding, a new
//! source port), which hashing the address cannot do. So, as other QUIC
//! deployments do (QUIC-LB's server id in the connection ID), each worker
//! issues connection IDs whose first byte is its index modulo the number of
//! workers, and a classic BPF program on the group sends a packet to the
//! socket at that index: the destination connection ID starts at byte 1 of
//! a short-header packet and byte 6 of a long-header one. A client's first
//! Initial carries an ID of its own choosing, so it lands on some worker,
//! which then answers with its own IDs (a Retry included). `steering =
//! "hash"` leaves the kernel's address hash instead (for measuring; a
//! rebound client then loses its connection).
//!
//! The sockets are bound in worker order, so the group's index of a worker's
//! socket is the worker's index. A group must not be shared with another
//! process (its sockets would take indexes the program does not expect):
//! before binding the group, the address is bound once without
//! `SO_REUSEPORT`, which fails while anyone serves it.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use rand::RngCore;

use super::udp::{self, Steering, Udp, UdpError};

/// Connection IDs this server issues, in bytes.
pub const CID_LEN: usize = 8;
/// Most workers one server runs (the first byte of a connection ID names one).
pub const MAX_WORKERS: usize = 64;

/// The workers to run by default: the cores this process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS)
}

/// Bind one socket per worker on `addr`; with more than one, in one
/// `SO_REUSEPORT` group steered as `udp.steering` says. The sockets are
/// returned in worker order, on one port (`addr`'s, or the one the kernel
/// chose for port 0).
pub fn bind(addr: SocketAddr, udp: &Udp, workers: usize) -> Result<Vec<UdpSocket>, UdpError> {
    if workers <= 1 {
        return Ok(vec![udp::bind(addr, udp)?.0]);
    }
    if addr.port() != 0 {
        // Fails while another process serves the address (see above).
        drop(UdpSocket::bind(addr).map_err(|source| UdpError::Bind { addr, source })?);
    }
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(workers);
    let mut at = addr;
    for _ in 0..workers {
        let socket = udp::bind_reusing_port(at, udp)?;
        at = socket.local_addr().map_err(|source| UdpError::Socket { addr: at, source })?;
        sockets.push(socket);
    }
    if udp.steering == Steering::ConnectionId {
        steer_by_connection_id(&sockets[0], workers).map_err(|source| UdpError::Socket { addr: at, source })?;
    }
    Ok(sockets)
}

/// Attach the steering program to the group of `socket`.
#[cfg(target_os = "linux")]
fn steer_by_connection_id(socket: &UdpSocket, workers: usize) -> std::io::Result<()> {
    use libc::{BPF_A, BPF_ABS, BPF_ALU, BPF_B, BPF_JA, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_MOD, BPF_RET};
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    // The program sees the UDP payload; its result is the socket's index
    // in the group (one out of range falls back to the address hash).
    let mut program = [
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0),               // 0: A = first byte
        op(BPF_JMP | BPF_JSET | BPF_K, 2, 0, 0x80),          // 1: long header? to 4
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 1),               // 2: short: A = byte 1
        op(BPF_JMP | BPF_JA, 0, 0, 1),                       // 3: to 5
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 6),               // 4: long: A = byte 6
        op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, workers as u32), // 5: A %= workers
        op(BPF_RET | BPF_A, 0, 0, 0),                        // 6: that socket
    ];
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::AttachReusePortCbpf, &fprog).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn steer_by_connection_id(_socket: &UdpSocket, _workers: usize) -> std::io::Result<()> {
    tracing::warn!("connection-ID steering needs Linux: the kernel's address hash steers packets (a rebound client loses its connection)");
    Ok(())
}

/// The connection IDs of worker `worker` of `workers`: the first byte is
/// the worker's index modulo `workers`, the rest random.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCids {
    worker: u8,
    workers: u8,
}

impl WorkerCids {
    pub fn new(worker: usize, workers: usize) -> WorkerCids {
        let workers = workers.clamp(1, MAX_WORKERS);
        WorkerCids { worker: (worker % workers) as u8, workers: workers as u8 }
    }
}

impl ConnectionIdGenerator for WorkerCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; CID_LEN];
        rand::thread_rng().fill_bytes(&mut bytes);
        // A random first byte among those that name this worker.
        let (worker, workers) = (u32::from(self.worker), u32::from(self.workers));
        let choices = (255 - worker) / workers + 1;
        bytes[0] = (worker + workers * (u32::from(bytes[0]) % choices)) as u8;
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker a connection ID names, as the steering program reads it.
    fn worker_of(cid: &[u8], workers: usize) -> Option<usize> {
        cid.first().map(|b| usize::from(*b) % workers)
    }

    #[test]
    fn every_connection_id_names_its_worker_and_stays_random() {
        for workers in [1, 2, 3, 7, 64] {
            for worker in 0..workers {
                let mut g = WorkerCids::new(worker, workers);
                let firsts: std::collections::BTreeSet<u8> = (0..400)
                    .map(|_| {
                        let cid = g.generate_cid();
                        assert_eq!(cid.len(), CID_LEN);
                        assert_eq!(worker_of(&cid, workers), Some(worker));
                        cid[0]
                    })
                    .collect();
                // Every byte that names the worker can come up.
                assert!(firsts.len() > (256 / workers).min(400) / 2, "{workers} workers, worker {worker}: {}", firsts.len());
            }
        }
        assert_eq!(worker_of(&[], 2), None);
    }

    #[test]
    fn the_group_is_bound_on_one_port_and_refuses_an_address_in_use() {
        let udp = Udp { recv_buffer_bytes: 1 << 17, send_buffer_bytes: 1 << 17, ..Udp::default() };
        let sockets = bind("127.0.0.1:0".parse().unwrap(), &udp, 3).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        assert!(sockets.iter().all(|s| s.local_addr().unwrap() == addr));
        let err = bind(addr, &Udp { steering: Steering::Hash, ..udp }, 2).unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot bind UDP {addr}: ")), "{err}");
        assert_eq!(Steering::parse("hash"), Some(Steering::Hash));
        assert_eq!(Steering::parse(Steering::ConnectionId.name()), Some(Steering::ConnectionId));
        assert_eq!(Steering::parse("random"), None);
    }

    /// The kernel delivers a packet to the socket its connection ID names.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_steers_by_the_connection_id() {
        let udp = Udp { recv_buffer_bytes: 1 << 17, send_buffer_bytes: 1 << 17, ..Udp::default() };
        let sockets = bind("127.0.0.1:0".parse().unwrap(), &udp, 3).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        for s in &sockets {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        // From several source ports, so that the address hash alone would scatter them.
        for port_try in 0..6 {
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            for worker in 0..3u8 {
                let mut short = vec![0x40, worker + 3 * (port_try % 2), 9, 9, 9, 9, 9, 9, 9];
                short.extend_from_slice(b"short");
                let mut long = vec![0xc0, 0, 0, 0, 1, 8, worker, 7, 7, 7, 7, 7, 7, 7];
                long.extend_from_slice(b"long");
                for packet in [short, long] {
                    client.send_to(&packet, addr).unwrap();
                    let mut buf = [0u8; 64];
                    let (n, _) = sockets[usize::from(worker)].recv_from(&mut buf).expect("the named worker's socket got it");
                    assert_eq!(&buf[..n], &packet[..]);
                }
            }
        }
    }
}
