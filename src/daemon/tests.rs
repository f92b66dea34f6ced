//! Start-up that fails halfway stops what it started.

use super::*;
use std::sync::atomic::AtomicUsize;

#[derive(Default)]
struct State {
    shutdown: AtomicBool,
    exited: AtomicUsize,
}

impl DaemonState for State {
    fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
}

fn worker(s: Arc<State>) -> impl FnOnce() + Send + 'static {
    move || {
        while !s.shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        s.exited.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts two threads, then fails at a later step like a start function would.
fn start_then_fail(s: &Arc<State>) -> Result<Running<State>, std::io::Error> {
    let mut t = Starting::new(s.clone());
    t.spawn("a", worker(s.clone()))?;
    t.spawn("b", worker(s.clone()))?;
    // A late step fails: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    std::net::TcpListener::bind(taken.local_addr()?)?;
    Ok(t.finish(None))
}

#[test]
fn a_failure_after_threads_started_stops_and_joins_them() {
    let s = Arc::new(State::default());
    assert!(start_then_fail(&s).is_err());
    // Joined before the error came back: both threads have exited.
    assert_eq!(s.exited.load(Ordering::Relaxed), 2);
    assert!(s.shutdown.load(Ordering::Relaxed));
}

#[test]
fn a_finished_start_keeps_its_threads_until_stop() {
    let s = Arc::new(State::default());
    let mut t = Starting::new(s.clone());
    t.spawn("a", worker(s.clone())).unwrap();
    let running = t.finish(None);
    assert!(!s.shutdown.load(Ordering::Relaxed));
    assert_eq!(s.exited.load(Ordering::Relaxed), 0);
    running.stop();
    assert_eq!(s.exited.load(Ordering::Relaxed), 1);
}
