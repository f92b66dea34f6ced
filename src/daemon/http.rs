//! The metrics HTTP server: one thread, nonblocking sockets and `poll(2)`,
//! so idle or slow clients cost a file descriptor each and never a thread.
//! Bounded by a connection limit (the oldest connection is evicted to make
//! room for a new one, so an honest scrape always gets in), one deadline per
//! connection covering reading the request and writing the answer (a client
//! trickling bytes is cut off), and a request size limit. One response per
//! connection (`Connection: close`), which is all Prometheus needs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; a new one evicts the oldest.
    pub max_connections: usize,
    /// From accept to the end of the response.
    pub timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_request_bytes: usize,
}

/// Why a connection was closed before it was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Evicted to make room for a newer connection (limit reached).
    Evicted,
    /// Its deadline passed.
    Timeout,
    /// Its request head exceeded the size limit (answered 431).
    TooLarge,
    /// Not HTTP, or a read/write error.
    Error,
}

impl DropReason {
    /// Every reason, for zero-valued counters.
    pub const ALL: [DropReason; 4] = [
        DropReason::Evicted,
        DropReason::Timeout,
        DropReason::TooLarge,
        DropReason::Error,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Evicted => "evicted",
            DropReason::Timeout => "timeout",
            DropReason::TooLarge => "too_large",
            DropReason::Error => "error",
        }
    }
}

/// The server's counters, shared with whoever renders them.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Requests answered.
    pub served: AtomicU64,
    /// Connections dropped, by `DropReason::ALL` order.
    pub dropped: [AtomicU64; 4],
    /// Connections open now.
    pub open: AtomicU64,
}

impl ServerStats {
    fn drop_one(&self, r: DropReason) {
        if let Some(c) = DropReason::ALL
            .iter()
            .position(|x| *x == r)
            .and_then(|i| self.dropped.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Dropped connections for `r`.
    pub fn dropped(&self, r: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|x| *x == r)
            .and_then(|i| self.dropped.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Prometheus text of these counters.
    pub fn exposition(&self) -> String {
        let mut f = super::metrics::Families::default();
        f.counter(
            "spimux_metrics_connections_accepted_total",
            "Connections to the metrics endpoint accepted.",
            super::metrics::one(self.accepted.load(Ordering::Relaxed)),
        );
        f.counter(
            "spimux_metrics_requests_total",
            "Requests the metrics endpoint answered.",
            super::metrics::one(self.served.load(Ordering::Relaxed)),
        );
        f.counter(
            "spimux_metrics_connections_dropped_total",
            "Metrics connections closed before an answer, by reason (evicted: the connection \
             limit was reached and it was the oldest; timeout: its deadline passed; too_large: \
             request over the size limit; error: not HTTP or a socket error).",
            DropReason::ALL
                .iter()
                .map(|r| (vec![("reason", r.label())], self.dropped(*r) as f64))
                .collect(),
        );
        f.gauge(
            "spimux_metrics_connections_open",
            "Connections to the metrics endpoint open now.",
            super::metrics::one(self.open.load(Ordering::Relaxed)),
        );
        f.encode()
    }
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    limits: Limits,
    /// Counters.
    pub stats: Arc<ServerStats>,
}

enum Phase {
    Reading(Vec<u8>),
    Writing { out: Vec<u8>, done: usize },
}

struct Conn {
    stream: TcpStream,
    accepted: Instant,
    deadline: Instant,
    phase: Phase,
}

/// What a complete request head asks for.
fn respond(head: &[u8], render: &dyn Fn() -> String) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .strip_suffix(b"\r")
        .unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let path = path.map(|p| p.split(|b| *b == b'?').next().unwrap_or_default());
    let (status, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", render()),
        (Some(b"GET"), _) => ("404 Not Found", "spimux: try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "spimux: GET /metrics\n".to_string(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

impl Server {
    /// Binds `listen`.
    pub fn bind(listen: &str, limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            limits,
            stats: Arc::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is set; `render` produces the exposition,
    /// to which the server's own counters are appended.
    pub fn serve(self, shutdown: &AtomicBool, render: impl Fn() -> String) {
        let render = || render() + &self.stats.exposition();
        let mut conns: Vec<Conn> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = conns
                .iter()
                .map(|c| c.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            fds.clear();
            fds.push(libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            for c in &conns {
                let events = match c.phase {
                    Phase::Reading(_) => libc::POLLIN,
                    Phase::Writing { .. } => libc::POLLOUT,
                };
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
            let ms = libc::c_int::try_from(wait.as_millis())
                .unwrap_or(100)
                .max(1);
            // SAFETY: `fds` is a live, correctly sized array of pollfd.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if rc < 0 {
                continue; // EINTR; anything else recurs and is bounded by the 100 ms wait
            }
            let ready: Vec<bool> = fds.iter().skip(1).map(|p| p.revents != 0).collect();
            // Serve the ready ones first, then expire, then accept: a new
            // connection can only evict one that had its chance this round.
            let now = Instant::now();
            let mut keep = Vec::with_capacity(conns.len());
            for (c, r) in conns.drain(..).zip(ready) {
                if let Some(c) = self.step(c, r, now, &render) {
                    keep.push(c);
                }
            }
            conns = keep;
            self.accept(&mut conns, now);
            self.stats.open.store(conns.len() as u64, Ordering::Relaxed);
        }
    }

    /// Advances one connection; `None` when it is finished or dropped.
    fn step(
        &self,
        mut c: Conn,
        ready: bool,
        now: Instant,
        render: &dyn Fn() -> String,
    ) -> Option<Conn> {
        if ready {
            match &mut c.phase {
                Phase::Reading(buf) => {
                    let mut chunk = [0u8; 2048];
                    match c.stream.read(&mut chunk) {
                        Ok(0) => return None, // closed before asking anything
                        Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            self.stats.drop_one(DropReason::Error);
                            return None;
                        }
                    }
                    if buf.len() > self.limits.max_request_bytes {
                        self.stats.drop_one(DropReason::TooLarge);
                        let msg = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        let _ = c.stream.write(msg);
                        return None;
                    }
                    if head_complete(buf) {
                        let out = respond(buf, render);
                        c.phase = Phase::Writing { out, done: 0 };
                    }
                }
                Phase::Writing { out, done } => {
                    match c.stream.write(out.get(*done..).unwrap_or_default()) {
                        Ok(n) => *done = done.saturating_add(n),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => {
                            self.stats.drop_one(DropReason::Error);
                            return None;
                        }
                    }
                    if *done >= out.len() {
                        self.stats.served.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        }
        if now >= c.deadline {
            self.stats.drop_one(DropReason::Timeout);
            return None;
        }
        Some(c)
    }

    /// Accepts everything pending, evicting the oldest connections when full.
    fn accept(&self, conns: &mut Vec<Conn>, now: Instant) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or out of descriptors: try next round
            };
            if stream.set_nonblocking(true).is_err() {
                self.stats.drop_one(DropReason::Error);
                continue;
            }
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            if conns.len() >= self.limits.max_connections {
                if let Some(i) = conns
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| c.accepted)
                    .map(|(i, _)| i)
                {
                    conns.swap_remove(i);
                    self.stats.drop_one(DropReason::Evicted);
                }
            }
            if self.limits.max_connections == 0 {
                self.stats.drop_one(DropReason::Evicted);
                continue;
            }
            conns.push(Conn {
                stream,
                accepted: now,
                deadline: now.checked_add(self.limits.timeout).unwrap_or(now),
                phase: Phase::Reading(Vec::new()),
            });
        }
    }
}

#[cfg(test)]
mod tests;
