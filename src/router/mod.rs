//! The router daemon: opens the interfaces, starts the receive threads and
//! the housekeeping thread, serves metrics, and stops cleanly on SIGINT or
//! SIGTERM.

pub mod arp;
pub mod config;
pub mod metrics;
pub mod offload;
pub mod originate;
pub mod route;
pub mod stats;
pub mod worker;

use crate::daemon::stats::Publisher;
use crate::io::offload::Offload;
use crate::io::{afpacket::AfPacket, ethtool, iface, pnet_link::Pnet, Backend, FrameTx};
use crate::nat::{Millis, Nat, NatEvents};
use crate::wire::ethernet::Mac;
use config::{BackendKind, RouterConfig};
use route::Routes;
use stats::{Counters, DropReason, Side, StatsRegistry};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// State every thread shares.
pub struct Shared {
    /// NAT core.
    pub nat: Nat,
    /// ARP resolver.
    pub arp: arp::ArpTable<(Vec<u8>, Offload)>,
    /// Routing table.
    pub routes: Routes,
    /// Router's inside address.
    pub inside_ip: Ipv4Addr,
    /// Router's outside address.
    pub outside_ip: Ipv4Addr,
    macs: [Mac; 2],
    mtus: [u32; 2],
    start: Instant,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
    /// Per-thread counters.
    pub stats: StatsRegistry,
    /// Worker count.
    pub workers: usize,
    /// Backend name.
    pub backend: &'static str,
}

impl Shared {
    /// Milliseconds since start (monotonic).
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }
    /// MAC of a data interface.
    pub fn iface_mac(&self, side: Side) -> Mac {
        self.macs[side as usize]
    }
    /// The MTU of a side's interface (read at start).
    pub fn mtu(&self, side: Side) -> u32 {
        self.mtus[side as usize]
    }
    /// Our address on a side.
    pub fn ip_on(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::Inside => self.inside_ip,
            Side::Outside => self.outside_ip,
        }
    }
    /// True when `ip` is ours on `side` (ARP target check).
    pub fn owns(&self, side: Side, ip: Ipv4Addr) -> bool {
        match side {
            Side::Inside => ip == self.inside_ip,
            Side::Outside => self.nat.is_external(ip),
        }
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

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    crate::daemon::open_err(what)
}

/// A started daemon; call `stop` or `run_until_signal`.
pub type Running = crate::daemon::Running<Shared>;

impl crate::daemon::DaemonState for Shared {
    fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
}

/// Opens everything first (so a failure leaves nothing half-started), then starts the threads.
pub fn start(cfg: &RouterConfig) -> Result<Running, StartError> {
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
        if cfg.dataplane.offloads_disabled() {
            let r = ethtool::disable_offloads(n).map_err(io_err(format!("ethtool on {n}")))?;
            tracing::info!(interface = n, disabled = ?r.disabled, refused = ?r.refused, "offloads");
        }
    }
    let group_base = match cfg.dataplane.fanout_group {
        0 => (std::process::id() & 0x7fff) as u16,
        g => g,
    };
    // Open every socket before starting any thread.
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
    let mut external = vec![cfg.outside.address.addr()];
    external.dedup();
    let nat = Nat::new(cfg.nat, cfg.esp, external, rand::random())?;
    let shared = Arc::new(Shared {
        nat,
        arp: arp::ArpTable::new(cfg.arp),
        routes: Routes::new(cfg),
        inside_ip: cfg.inside.address.addr(),
        outside_ip: cfg.outside.address.addr(),
        macs,
        mtus,
        start: Instant::now(),
        shutdown: AtomicBool::new(false),
        stats: StatsRegistry::default(),
        workers,
        backend: backend.name(),
    });
    let mut threads = Vec::new();
    for (i, (side, rx, tx)) in queues.into_iter().enumerate() {
        let w = worker::Worker::new(side, shared.clone(), rx, tx, Publisher::new(&shared.stats));
        let batch = cfg.dataplane.batch;
        let t = std::thread::Builder::new()
            .name(format!("spimux-{}-{}", side.label(), i / 2))
            .spawn(move || w.run(batch))
            .map_err(io_err("spawn worker"))?;
        threads.push(t);
    }
    let hk_shared = shared.clone();
    let hk_publisher = Publisher::new(&shared.stats);
    threads.push(
        std::thread::Builder::new()
            .name("spimux-housekeeping".into())
            .spawn(move || housekeeping(hk_shared, hk_tx, hk_publisher))
            .map_err(io_err("spawn housekeeping"))?,
    );
    let mut metrics_addr = None;
    if let Some(server) = metrics_listener {
        metrics_addr = server.local_addr().ok();
        let m_shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("spimux-metrics".into())
                .spawn(move || {
                    crate::daemon::metrics::serve(server, &m_shared.shutdown, || {
                        metrics::render(&m_shared)
                    })
                })
                .map_err(io_err("spawn metrics"))?,
        );
    }
    tracing::info!(
        workers,
        backend = shared.backend,
        inside = names[0],
        outside = names[1],
        "router started"
    );
    Ok(Running {
        shared,
        threads,
        metrics_addr,
    })
}

/// ARP retries and cache expiry every 100 ms; NAT expiry every second.
fn housekeeping(
    shared: Arc<Shared>,
    mut tx: [Box<dyn FrameTx>; 2],
    mut publisher: Publisher<Counters>,
) {
    let mut local = Counters::default();
    let mut last_sweep = 0;
    while !shared.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = shared.now();
        let t = shared.arp.tick(now);
        for _ in 0..t.dropped {
            local.count_drop(DropReason::ArpUnresolved);
        }
        for (side, ip) in t.retry {
            let f = originate::arp_request(shared.iface_mac(side), shared.ip_on(side), ip);
            if tx[side as usize]
                .send_batch(&[(&f, Offload::default())])
                .unwrap_or(0)
                == 1
            {
                local.arp_requests_sent += 1;
                local.tx_packets[side as usize] += 1;
                local.tx_bytes[side as usize] += f.len() as u64;
            }
        }
        if now - last_sweep >= 1000 {
            last_sweep = now;
            let mut ev = NatEvents::default();
            shared.nat.expire(now, &mut ev);
            local.nat.add(&ev);
        }
        publisher.publish(&local, now);
    }
}

/// Runs until SIGINT/SIGTERM, then stops and returns the final counters.
pub fn run_until_signal(cfg: &RouterConfig) -> Result<Counters, StartError> {
    let shared = start(cfg)?
        .run_until_signal()
        .map_err(io_err("signal handler"))?;
    Ok(shared.stats.total())
}
