//! What every daemon (router, responder, client) shares: the Prometheus
//! exposition and HTTP endpoint, per-thread counter slots, and waiting for
//! SIGINT/SIGTERM.

pub mod control;
pub mod http;
pub mod log;
pub mod metrics;
pub mod reload;
pub mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A device, socket or thread that could not be set up, and what it was.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct OpenError {
    /// What was being done.
    pub what: String,
    /// Cause.
    pub source: std::io::Error,
}

/// Wraps an I/O error with what was being opened.
pub fn open_err<E: From<OpenError>>(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> E {
    let what = what.into();
    move |source| E::from(OpenError { what, source })
}

/// Blocks until SIGINT or SIGTERM arrives; calls `on_hup` (on this thread)
/// for each SIGHUP meanwhile (several SIGHUPs before it runs count once).
pub fn wait_for_signal(mut on_hup: impl FnMut()) -> std::io::Result<()> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    while !term.load(Ordering::Relaxed) {
        if hup.swap(false, Ordering::Relaxed) {
            tracing::info!("SIGHUP: reloading the configuration");
            on_hup();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("signal received, stopping");
    Ok(())
}

/// State a daemon's threads share: at least a shutdown flag.
pub trait DaemonState: Send + Sync + 'static {
    /// Set to stop every thread.
    fn shutdown_flag(&self) -> &AtomicBool;
}

/// The threads of a daemon being started. If start-up fails halfway (an
/// early return before [`Starting::finish`]), dropping this stops and joins
/// every thread already running, so their sockets and devices close and
/// nothing is left half-started.
pub struct Starting<S: DaemonState> {
    shared: Arc<S>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<S: DaemonState> Starting<S> {
    /// No threads yet.
    pub fn new(shared: Arc<S>) -> Self {
        Starting {
            shared,
            threads: Vec::new(),
        }
    }

    /// Starts thread `spimux-NAME` running `f`.
    pub fn spawn(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let t = std::thread::Builder::new()
            .name(format!("spimux-{name}"))
            .spawn(f)?;
        self.threads.push(t);
        Ok(())
    }

    /// Start-up succeeded: the running daemon.
    pub fn finish(mut self, metrics_addr: Option<std::net::SocketAddr>) -> Running<S> {
        Running {
            shared: self.shared.clone(),
            threads: std::mem::take(&mut self.threads),
            metrics_addr,
        }
    }
}

impl<S: DaemonState> Drop for Starting<S> {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shared.shutdown_flag().store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        tracing::info!("start-up failed: the threads already started were stopped");
    }
}

/// A started daemon; dropping it does not stop it, call `stop`.
pub struct Running<S> {
    /// Shared state (for metrics and tests).
    pub shared: Arc<S>,
    /// The daemon's threads.
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// Bound metrics address, when enabled.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[cfg(test)]
mod tests;

impl<S: DaemonState> Running<S> {
    /// Requests shutdown, joins every thread and hands back the state.
    pub fn stop(self) -> Arc<S> {
        self.shared.shutdown_flag().store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.shared
    }

    /// Logs where metrics are served, waits for SIGINT/SIGTERM, calling
    /// `on_hup` for each SIGHUP (a reload), then stops.
    pub fn run_until_signal_with(self, on_hup: impl FnMut()) -> std::io::Result<Arc<S>> {
        if let Some(a) = self.metrics_addr {
            tracing::info!("metrics on http://{a}/metrics");
        }
        let waited = wait_for_signal(on_hup);
        let s = self.stop();
        waited.map(|()| s)
    }
}
