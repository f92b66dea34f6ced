//! The metrics server on 127.0.0.1 with real sockets: idle floods, a
//! slowloris client, oversized requests. Waits are bounded; no timing is asserted.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

struct Running {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(limits: Limits) -> Running {
    let server = Server::bind("127.0.0.1:0", limits).unwrap();
    let addr = server.local_addr().unwrap();
    let stats = server.stats.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || server.serve(&s, || "spimux_test 1\n".to_string()));
    Running {
        addr,
        stats,
        stop,
        thread: Some(thread),
    }
}

/// One scrape; the whole answer (the server closes after it).
fn scrape(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Polls `cond` every 20 ms for at most 20 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

const LIMITS: Limits = Limits {
    max_connections: 64,
    timeout: Duration::from_secs(5),
    max_request_bytes: 8192,
};

#[test]
fn answers_metrics_and_refuses_other_paths_and_methods() {
    let r = start(LIMITS);
    let ok = scrape(r.addr, "/metrics");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("spimux_test 1\n"), "{ok}");
    assert!(ok.contains("spimux_metrics_connections_dropped_total{reason=\"timeout\"} 0"));
    assert!(scrape(r.addr, "/").starts_with("HTTP/1.1 404"));
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
}

#[test]
fn scrapes_succeed_while_1000_idle_connections_are_open() {
    let r = start(LIMITS);
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(r.addr).unwrap())
        .collect();
    // All of them were accepted; all but the limit evicted, oldest first.
    // Both counters are polled: the server counts an acceptance before the
    // eviction it causes, so reading one right after the other can race.
    assert!(eventually(|| {
        r.stats.accepted.load(Ordering::Relaxed) >= 1000
            && r.stats.dropped(DropReason::Evicted) >= 1000 - 64
    }));
    for _ in 0..3 {
        let out = scrape(r.addr, "/metrics");
        assert!(out.contains("spimux_test 1\n"), "{out}");
    }
    assert!(r.stats.open.load(Ordering::Relaxed) <= 64);
    let out = scrape(r.addr, "/metrics");
    assert!(
        !out.contains("spimux_metrics_connections_dropped_total{reason=\"evicted\"} 0\n"),
        "{out}"
    );
    drop(idle);
}

#[test]
fn a_slowloris_client_is_cut_off_at_its_deadline() {
    let r = start(Limits {
        timeout: Duration::from_millis(500),
        ..LIMITS
    });
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut cut = false;
    // One byte every 100 ms of a never-ending header: the server must close
    // (a read of 0 or a write error) long before the 200 bytes are out.
    for b in b"GET /metrics HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain([b'a'; 200].iter())
    {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(_) => panic!("answered an incomplete request"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the slow client was never cut off");
    assert!(eventually(|| r.stats.dropped(DropReason::Timeout) == 1));
    // Honest scrapes still work.
    assert!(scrape(r.addr, "/metrics").contains("spimux_test 1\n"));
}

#[test]
fn oversized_requests_are_refused() {
    let r = start(Limits {
        max_request_bytes: 100,
        ..LIMITS
    });
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(300)).as_bytes());
    let mut out = Vec::new();
    // The answer may be lost to a reset if the kernel still held unread bytes.
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"));
    assert!(eventually(|| r.stats.dropped(DropReason::TooLarge) == 1));
}
