//! The ESP endpoint daemons: `spimux responder` (gateway for many peers,
//! SA by SPI inbound and by the peer's inner address outbound) and
//! `spimux client` (one tunnel). Inner packets travel through a TUN device;
//! outer packets are plain ESP or ESP in UDP/4500.

pub mod child_sas;
pub mod config;
pub mod core;
pub mod datapath;
pub mod ike_config;
pub mod ike_handoff;
pub mod ike_setup;
pub mod keying;
pub mod metrics;
pub mod registration;
pub mod reload;
pub mod runtime;
pub mod show;
pub mod sockets;
pub mod tunnel;
pub mod tunnel_status;

use crate::esp::table::SaTable;
use crate::io::outer::{RawEsp, UdpEncap};
use crate::io::route_watch::RouteWatch;
use crate::io::tun::Tun;
use crate::spi::SpiAllocator;
use config::{EndpointConfig, EndpointConfigError, Role};
use runtime::{Counters, Shared};
use sockets::Outer;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tunnel::Tunnel;

/// Why an endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(#[from] EndpointConfigError),
    /// A device or socket could not be opened.
    #[error(transparent)]
    Io(#[from] crate::daemon::OpenError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    crate::daemon::open_err(what)
}

fn config_err(field: String, why: impl std::fmt::Display) -> StartError {
    StartError::Config(EndpointConfigError {
        field,
        why: why.to_string(),
    })
}

/// Validates the configuration and builds the tunnels, SA table and IKE
/// engine (no I/O beyond reading certificate files).
pub fn prepare(cfg: &EndpointConfig, role: Role) -> Result<Prepared, StartError> {
    let mut alloc =
        SpiAllocator::new(cfg.spi_layout).map_err(|e| config_err("spi_layout".into(), e))?;
    let peers = cfg.resolve(role, &mut alloc, rand::random)?;
    let mut table = SaTable::default();
    let mut tunnels = Vec::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        let inner = &p.config.inner;
        let added = match &p.manual {
            Some(m) => table.insert(i, m.local_spi, inner),
            None => table.add_inner(i, inner),
        };
        added.map_err(|e| config_err(format!("peers[{i}].inner"), e))?;
        tunnels.push(match &p.manual {
            Some(m) => {
                Tunnel::new(p, m).map_err(|e| config_err(format!("peers[{i}].key_in"), e))?
            }
            None => Tunnel::unkeyed(
                &p.config.name,
                inner,
                p.config.keepalive_secs.saturating_mul(1000),
            ),
        });
    }
    let (policies, tunnel_of_peer) = ike_setup::policies(cfg, role, &peers)?;
    let engine_cfg = ike_setup::engine_config(cfg)?;
    // Registration identifications start at a random point in the lower
    // half of the space (not guessable, room to count up); a gateway that saw
    // higher ones after a restart says so in its `stale` reply.
    let id_floor = random_id_floor().map_err(|e| config_err("mobility".into(), e))?;
    let gateway = peers.first().and_then(|p| p.remote);
    let mob = registration::Mobility::new(cfg, role, peers.len(), gateway, id_floor);
    if let (Some(gw), Some(t)) = (mob.gateway_outer(), tunnels.first()) {
        // A mobile client starts on UDP: it passes any NAT until a registration says otherwise.
        *t.peer.write() = Some(tunnel::Peer::new(gw, tunnel::Encap::Udp));
    }
    let spi_stats = alloc.stats;
    let ike = if policies.is_empty() {
        None
    } else {
        let (tx, rx) = crossbeam::channel::bounded(ike_handoff::QUEUE);
        let engine = crate::ike::Engine::new(
            engine_cfg,
            policies,
            alloc,
            Box::new(ring::rand::SystemRandom::new()),
            0,
        );
        Some((ike_handoff::Keying::new(tx, tunnel_of_peer), engine, rx))
    };
    let (keying, ike_parts) = match ike {
        Some((k, e, rx)) => (Some(k), Some((e, rx))),
        None => (None, None),
    };
    let core = core::Core {
        role: role.label(),
        tunnels,
        table,
        spi_stats,
        mobility: mob,
        replay_windows: peers.iter().map(|p| p.config.replay_window).collect(),
    };
    let shared = Shared::new(core, keying, cfg.clone(), role);
    Ok(Prepared {
        shared,
        ike: ike_parts,
    })
}

/// A random first registration identification below 2^62.
fn random_id_floor() -> Result<u64, &'static str> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no system randomness for registration identifications")?;
    Ok(u64::from_be_bytes(b) >> 2)
}

/// Validated state, plus the IKE engine and its queue when IKE is used.
pub struct Prepared {
    /// Shared endpoint state.
    pub shared: Shared,
    /// The IKE engine and the receiving end of its queue.
    pub ike: Option<(
        crate::ike::Engine,
        crossbeam::channel::Receiver<ike_handoff::IkeInput>,
    )>,
}

/// A started daemon; call `stop` or `run_until_signal_with`.
pub type Running = crate::daemon::Running<Shared>;

impl crate::daemon::DaemonState for Shared {
    fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }
}

/// Opens the TUN device, routes and sockets first (a failure leaves nothing
/// running), then starts the threads. With `source`, reloads re-read it.
pub fn start(
    cfg: &EndpointConfig,
    role: Role,
    source: Option<reload::ConfigSource>,
) -> Result<Running, StartError> {
    let mut prepared = prepare(cfg, role)?;
    prepared.shared.source = source;
    let shared = Arc::new(prepared.shared);
    let metrics = crate::daemon::metrics::bind(&cfg.metrics).map_err(io_err("metrics"))?;
    let socket = cfg.control.path(role);
    let control = match socket.as_str() {
        "" => None,
        p => Some(
            crate::daemon::control::Server::bind(std::path::Path::new(p))
                .map_err(io_err(format!("control.socket {p}")))?,
        ),
    };
    let o = &cfg.outer;
    let outer = Arc::new(Outer {
        raw: RawEsp::open(o.local, o.rcvbuf).map_err(io_err("raw ESP socket"))?,
        udp: UdpEncap::open(o.local, o.udp_port, o.rcvbuf)
            .map_err(io_err(format!("outer.udp_port {}", o.udp_port)))?,
        udp_port: o.udp_port,
    });
    let ike_sock = match &prepared.ike {
        Some(_) => Some(Arc::new(
            UdpEncap::open(o.local, cfg.ike.port, o.rcvbuf)
                .map_err(io_err(format!("ike.port {}", cfg.ike.port)))?,
        )),
        None => None,
    };
    let key_log = match &cfg.ike.key_log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io_err(format!("ike.key_log {}", p.display())))?,
        ),
        None => None,
    };
    let watch = match shared.core.mobility.gateway_outer() {
        Some(gw) => Some((gw, RouteWatch::open().map_err(io_err("rtnetlink"))?)),
        None => None,
    };
    let tun = Arc::new(
        Tun::open(&cfg.tun.name, cfg.tun.address, cfg.tun.mtu, cfg.tun.offload)
            .map_err(io_err(format!("tun.name {}", cfg.tun.name)))?,
    );
    for (i, p) in cfg.peers.iter().enumerate() {
        for net in &p.inner {
            if cfg.tun.address.trunc() == *net {
                continue; // the connected route already covers it
            }
            tun.add_route(*net)
                .map_err(io_err(format!("route peers[{i}].inner {net}")))?;
        }
    }
    // From here on a failure stops and joins the threads already started.
    let mut threads = crate::daemon::Starting::new(shared.clone());
    let mut spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        threads
            .spawn(name, f)
            .map_err(io_err(format!("spawn {name}")))
    };
    let (s, t, o) = (shared.clone(), tun.clone(), outer.clone());
    spawn("tun", Box::new(move || datapath::tun_loop(s, t, o)))?;
    let (s, t, o) = (shared.clone(), tun.clone(), outer.clone());
    spawn("esp", Box::new(move || datapath::esp_loop(s, t, o)))?;
    let (s, t, o) = (shared.clone(), tun.clone(), outer.clone());
    spawn("udp", Box::new(move || datapath::udp_loop(s, t, o)))?;
    let (s, o) = (shared.clone(), outer.clone());
    spawn(
        "keepalive",
        Box::new(move || datapath::keepalive_loop(s, o)),
    )?;
    if let (Some((mut engine, rx)), Some(sock)) = (prepared.ike, ike_sock) {
        // A client starts its tunnels; our address toward the gateway feeds NAT detection.
        for (p, pol) in engine.policies().to_vec().iter().enumerate() {
            if let Some(remote) = pol.remote {
                let local = local_toward(remote);
                if let Err(e) = engine.initiate(shared.now(), p, local) {
                    tracing::warn!(peer = %pol.name, error = %e, "cannot initiate");
                }
            }
        }
        let (s, k) = (shared.clone(), sock.clone());
        let port = cfg.ike.port;
        spawn("ike-port", Box::new(move || keying::port_loop(s, k, port)))?;
        let (s, o) = (shared.clone(), outer.clone());
        spawn(
            "ike",
            Box::new(move || keying::ike_loop(s, o, sock, engine, rx, key_log)),
        )?;
    }
    if let Some((gw, w)) = watch {
        let (s, o) = (shared.clone(), outer.clone());
        spawn(
            "mobility",
            Box::new(move || datapath::route_loop(&s, &o, gw, w)),
        )?;
    }
    if let Some(server) = control {
        let s = shared.clone();
        spawn(
            "control",
            Box::new(move || {
                crate::daemon::control::serve(server, &s.shutdown, |r| show::answer(&s, r))
            }),
        )?;
    }
    let mut metrics_addr = None;
    if let Some(server) = metrics {
        metrics_addr = server.local_addr().ok();
        let s = shared.clone();
        spawn(
            "metrics",
            Box::new(move || {
                crate::daemon::metrics::serve(server, &s.shutdown, || metrics::render(&s))
            }),
        )?;
    }
    for t in &shared.core.tunnels {
        tracing::info!(
            peer = %t.name,
            local_spi = format!("{:#010x}", t.local_spi),
            remote_spi = format!("{:#010x}", t.remote_spi),
            derived = t.derived,
            "tunnel"
        );
    }
    tracing::info!(
        role = shared.core.role,
        tun = tun.name(),
        tunnels = shared.core.tunnels.len(),
        "endpoint started"
    );
    Ok(threads.finish(metrics_addr))
}

/// Our source address toward `remote` (the kernel's route choice; nothing is sent).
fn local_toward(remote: std::net::SocketAddrV4) -> Option<std::net::Ipv4Addr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect(remote).ok()?;
    match s.local_addr().ok()? {
        std::net::SocketAddr::V4(a) => Some(*a.ip()),
        std::net::SocketAddr::V6(_) => None,
    }
}

/// Runs until SIGINT/SIGTERM, reloading `source` on SIGHUP, then stops and
/// returns the final counters.
pub fn run_until_signal(
    cfg: &EndpointConfig,
    role: Role,
    source: Option<reload::ConfigSource>,
) -> Result<Counters, StartError> {
    let running = start(cfg, role, source)?;
    let on_hup = running.shared.clone();
    let shared = running
        .run_until_signal_with(move || {
            let _ = reload::reload(&on_hup);
        })
        .map_err(io_err("signal handler"))?;
    Ok(shared.stats.total())
}

#[cfg(test)]
mod tests;
