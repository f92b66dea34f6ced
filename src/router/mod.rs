//! The router daemon: opens the interfaces, starts the receive threads and
//! the housekeeping thread, serves metrics, and stops cleanly on SIGINT or
//! SIGTERM.

pub mod arp;
pub mod capture;
pub mod config;
pub mod forwarding;
pub mod metrics;
pub mod offload;
pub mod originate;
pub mod reload;
pub mod route;
pub mod show;
pub mod stats;
pub mod worker;

use crate::daemon::stats::Publisher;
use crate::io::{afpacket::AfPacket, ethtool, iface, pnet_link::Pnet, Backend, FrameTx};
use crate::nat::Millis;
use crate::wire::ethernet::Mac;
use config::{BackendKind, RouterConfig};
use forwarding::{Forwarding, Interfaces};
use stats::{Counters, Side, StatsRegistry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// State every thread shares.
pub struct Shared {
    /// The forwarding policy: NAT, ARP, routes and addresses.
    pub fwd: Forwarding,
    start: Instant,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
    /// Per-thread counters.
    pub stats: StatsRegistry,
    /// Worker count.
    pub workers: usize,
    /// Backend name.
    pub backend: &'static str,
    /// The configuration in force (replaced by each applied reload).
    pub config: parking_lot::Mutex<RouterConfig>,
    /// Where a reload reads the configuration; `None`: reloads are refused.
    pub source: Option<reload::ConfigSource>,
    /// Reloads by result.
    pub reloads: reload::ReloadStats,
    /// Offloads turned off at start (`dataplane.disable_offloads`), put
    /// back when the router stops.
    pub offloads_changed: Vec<(String, ethtool::OffloadReport)>,
    /// Capture of dropped frames (off until `capture.apply`).
    pub capture: capture::Capture,
}

impl Shared {
    /// Shared state around `fwd` (built from `config`) for `workers`
    /// workers on `backend`; the clock starts now.
    pub fn new(
        fwd: Forwarding,
        config: RouterConfig,
        workers: usize,
        backend: &'static str,
    ) -> Self {
        Shared {
            fwd,
            start: Instant::now(),
            shutdown: AtomicBool::new(false),
            stats: StatsRegistry::default(),
            workers,
            backend,
            config: parking_lot::Mutex::new(config),
            source: None,
            reloads: reload::ReloadStats::default(),
            offloads_changed: Vec::new(),
            capture: capture::Capture::new(
                [Side::Inside.label().into(), Side::Outside.label().into()],
                workers.saturating_mul(2),
            ),
        }
    }

    /// Milliseconds since start (monotonic).
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// Receive threads: one per interface per worker.
    pub fn receive_threads(&self) -> usize {
        self.workers.saturating_mul(2)
    }
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(#[from] crate::nat::ConfigError),
    /// A device or socket could not be opened.
    #[error(transparent)]
    Io(#[from] crate::daemon::OpenError),
}

impl From<capture::ApplyError> for StartError {
    fn from(e: capture::ApplyError) -> Self {
        match e {
            capture::ApplyError::Config(c) => StartError::Config(c),
            capture::ApplyError::Open(o) => StartError::Io(o),
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    crate::daemon::open_err(what)
}

/// A started daemon; call `stop` or `run_until_signal_with`.
pub type Running = crate::daemon::Running<Shared>;

impl crate::daemon::DaemonState for Shared {
    fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
}

/// Opens everything first (so a failure leaves nothing half-started), then
/// changes offloads and starts the threads; a thread that cannot be started
/// stops the ones already running and puts the offloads back. Without a
/// configuration source, reloads are refused.
pub fn start(cfg: &RouterConfig) -> Result<Running, StartError> {
    start_from(cfg, None)
}

/// [`start`], with the source a reload reads `cfg` from again.
pub fn start_from(
    cfg: &RouterConfig,
    source: Option<reload::ConfigSource>,
) -> Result<Running, StartError> {
    cfg.validate()?;
    let workers = cfg.workers();
    let backend: Box<dyn Backend> = match cfg.dataplane.backend {
        BackendKind::Afpacket => Box::new(AfPacket {
            batch: cfg.dataplane.batch,
        }),
        BackendKind::Pnet => Box::new(Pnet),
    };
    let names = [
        cfg.inside.interface.as_str(),
        cfg.outside.interface.as_str(),
    ];
    let mut macs = [Mac::ZERO; 2];
    let mut mtus = [0u32; 2];
    for (i, n) in names.iter().enumerate() {
        let info = iface::lookup(n).map_err(io_err(format!("interface {n}")))?;
        if !info.up {
            tracing::warn!(interface = n, "interface is down");
        }
        macs[i] = info.mac;
        mtus[i] = info.mtu;
    }
    let fwd = Forwarding::new(cfg, Interfaces { macs, mtus }, rand::random())?;
    let group_base = match cfg.dataplane.fanout_group {
        0 => (std::process::id() & 0x7fff) as u16,
        g => g,
    };
    // Open every socket before changing anything or starting any thread.
    let mut queues = Vec::new();
    for _ in 0..workers {
        for side in [Side::Inside, Side::Outside] {
            let n = names[side as usize];
            let group = group_base.wrapping_add(side as u16 * 0x4000);
            let rx = backend
                .open_rx(n, group)
                .map_err(io_err(format!("receive socket on {n}")))?;
            let tx_in = backend
                .open_tx(names[0])
                .map_err(io_err(format!("send socket on {}", names[0])))?;
            let tx_out = backend
                .open_tx(names[1])
                .map_err(io_err(format!("send socket on {}", names[1])))?;
            queues.push((side, rx, [tx_in, tx_out]));
        }
    }
    let hk_tx: [Box<dyn FrameTx>; 2] = [
        backend
            .open_tx(names[0])
            .map_err(io_err("housekeeping send socket"))?,
        backend
            .open_tx(names[1])
            .map_err(io_err("housekeeping send socket"))?,
    ];
    let metrics_listener = crate::daemon::metrics::bind(&cfg.metrics).map_err(io_err("metrics"))?;
    let control = crate::daemon::control::bind(&cfg.control)
        .map_err(io_err(format!("control socket {}", cfg.control.socket)))?;
    let capture = capture::Capture::new(names.map(String::from), workers.saturating_mul(2));
    capture.apply(&cfg.capture)?;
    let mut changed = Vec::new();
    if cfg.dataplane.offloads_disabled() {
        for n in names {
            match ethtool::disable_offloads(n) {
                Ok(r) => {
                    tracing::info!(interface = n, disabled = ?r.disabled, refused = ?r.refused, "offloads");
                    changed.push((n, r));
                }
                Err(e) => {
                    restore_offloads(&changed);
                    return Err(io_err(format!("ethtool on {n}"))(e));
                }
            }
        }
    }
    let mut shared = Shared::new(fwd, cfg.clone(), workers, backend.name());
    shared.source = source;
    shared.capture = capture;
    shared.offloads_changed = changed
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect();
    let shared = Arc::new(shared);
    let mut starting = crate::daemon::Starting::new(shared.clone());
    let listeners = (metrics_listener, control);
    let metrics_addr = match spawn_all(cfg, &shared, queues, hk_tx, listeners, &mut starting) {
        Ok(a) => a,
        Err(e) => {
            // Stops and joins what already runs before the offloads go back.
            drop(starting);
            restore_offloads(&shared.offloads_changed);
            return Err(e);
        }
    };
    tracing::info!(
        workers,
        backend = shared.backend,
        inside = names[0],
        outside = names[1],
        "router started"
    );
    Ok(starting.finish(metrics_addr))
}

/// A receive queue with its two senders.
type Queue = (Side, Box<dyn crate::io::FrameRx>, [Box<dyn FrameTx>; 2]);

/// Starts the receive threads, housekeeping and metrics under `starting`
/// (which stops them again if a later one fails); returns the bound metrics
/// address.
fn spawn_all(
    cfg: &RouterConfig,
    shared: &Arc<Shared>,
    queues: Vec<Queue>,
    hk_tx: [Box<dyn FrameTx>; 2],
    (metrics_listener, control): (
        Option<crate::daemon::metrics::Server>,
        Option<crate::daemon::control::Server>,
    ),
    starting: &mut crate::daemon::Starting<Shared>,
) -> Result<Option<std::net::SocketAddr>, StartError> {
    for (i, (side, rx, tx)) in queues.into_iter().enumerate() {
        let w = worker::Worker::new(side, shared.clone(), rx, tx, Publisher::new(&shared.stats));
        let batch = cfg.dataplane.batch;
        starting
            .spawn(&format!("{}-{}", side.label(), i / 2), move || w.run(batch))
            .map_err(io_err("spawn worker"))?;
    }
    let c_shared = shared.clone();
    starting
        .spawn("capture", move || {
            c_shared.capture.run_writer(&c_shared.shutdown)
        })
        .map_err(io_err("spawn capture writer"))?;
    let hk_shared = shared.clone();
    let hk_publisher = Publisher::new(&shared.stats);
    starting
        .spawn("housekeeping", move || {
            housekeeping(hk_shared, hk_tx, hk_publisher)
        })
        .map_err(io_err("spawn housekeeping"))?;
    if let Some(server) = control {
        tracing::info!(socket = %server.path().display(), "control socket");
        let c_shared = shared.clone();
        starting
            .spawn("control", move || {
                crate::daemon::control::serve(server, &c_shared.shutdown, |r| {
                    show::answer(&c_shared, r)
                })
            })
            .map_err(io_err("spawn control"))?;
    }
    let Some(server) = metrics_listener else {
        return Ok(None);
    };
    let addr = server.local_addr().ok();
    let m_shared = shared.clone();
    starting
        .spawn("metrics", move || {
            crate::daemon::metrics::serve(server, &m_shared.shutdown, || metrics::render(&m_shared))
        })
        .map_err(io_err("spawn metrics"))?;
    Ok(addr)
}

/// Puts back the offloads `changed` records (start-up failure, or stop).
fn restore_offloads<S: AsRef<str>>(changed: &[(S, ethtool::OffloadReport)]) {
    for (n, r) in changed {
        let n = n.as_ref();
        if let Err(e) = ethtool::restore_offloads(n, r) {
            tracing::warn!(interface = n, error = %e, "could not restore offloads");
        }
    }
}

/// ARP retries and cache expiry every 100 ms; NAT expiry every second.
fn housekeeping(
    shared: Arc<Shared>,
    mut tx: [Box<dyn FrameTx>; 2],
    mut publisher: Publisher<Counters>,
) {
    let mut local = shared.fwd.local(1, shared.now());
    let mut last_sweep = 0;
    while !shared.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = shared.now();
        shared.fwd.arp_tick(now, &mut local);
        worker::send_batch(&mut tx, &mut local, None);
        if now.saturating_sub(last_sweep) >= 1000 {
            last_sweep = now;
            shared.fwd.expire(now, &mut local);
        }
        publisher.publish(&local.counters, now);
    }
}

/// Runs until SIGINT/SIGTERM, reloading `source` on SIGHUP, then stops and
/// returns the final counters.
pub fn run_until_signal(
    cfg: &RouterConfig,
    source: Option<reload::ConfigSource>,
) -> Result<Counters, StartError> {
    let running = start_from(cfg, source)?;
    let on_hup = running.shared.clone();
    let shared = running
        .run_until_signal_with(move || {
            let _ = reload::reload(&on_hup);
        })
        .map_err(io_err("signal handler"))?;
    restore_offloads(&shared.offloads_changed);
    Ok(shared.stats.total())
}
