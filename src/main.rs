//! `spimux` command line: `router`, `responder`, `client`, `spi` (and later `mobile`).

use clap::{Args, Parser, Subcommand};
use spimux::endpoint::config::{EndpointConfig, Role};
use spimux::router::config::RouterConfig;
use spimux::spi::{self, Layout};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "spimux",
    version,
    about = "NAT router dataplane with SPI-hash ESP demultiplexing"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the NAT router on two interfaces.
    Router(RouterArgs),
    /// Run the ESP gateway (many peers, derives its inbound SPIs).
    Responder(EndpointArgs),
    /// Run an ESP client (one tunnel to a gateway).
    Client(EndpointArgs),
    /// SPI-hash tools for operators.
    #[command(subcommand)]
    Spi(SpiCmd),
}

#[derive(Args)]
struct RouterArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the configuration and exit without starting.
    #[arg(long)]
    check: bool,
    /// Override inside.interface.
    #[arg(long)]
    inside_interface: Option<String>,
    /// Override outside.interface.
    #[arg(long)]
    outside_interface: Option<String>,
    /// Override metrics.listen (empty disables).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Override capture.drops_file: write dropped frames to this pcapng file
    /// (rate-limited, drop reason as packet comment; empty = off).
    #[arg(long, value_name = "FILE")]
    capture_drops: Option<String>,
}

#[derive(Args)]
struct EndpointArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the configuration, print the tunnels and exit without starting.
    #[arg(long)]
    check: bool,
    /// Override metrics.listen (empty disables).
    #[arg(long)]
    metrics_listen: Option<String>,
}

#[derive(Args, Clone, Copy)]
struct LayoutArgs {
    /// Tag bytes copied from the digest (1..=4).
    #[arg(long, default_value_t = Layout::default().tag_len)]
    tag_len: u8,
    /// First SPI byte (network order) holding the tag.
    #[arg(long, default_value_t = Layout::default().spi_offset)]
    spi_offset: u8,
    /// First MD5 digest byte copied.
    #[arg(long, default_value_t = Layout::default().digest_offset)]
    digest_offset: u8,
}

impl From<LayoutArgs> for Layout {
    fn from(a: LayoutArgs) -> Self {
        Layout {
            tag_len: a.tag_len,
            spi_offset: a.spi_offset,
            digest_offset: a.digest_offset,
        }
    }
}

#[derive(Subcommand)]
enum SpiCmd {
    /// Derive a responder SPI from the peer's SPI (random bytes drawn fresh).
    Derive {
        /// Peer SPI, hex (0x…) or decimal.
        peer_spi: String,
        /// SPIs already live on the responder, never returned (repeatable).
        #[arg(long = "avoid", value_name = "SPI")]
        avoid: Vec<String>,
        #[command(flatten)]
        layout: LayoutArgs,
    },
    /// Check whether DERIVED carries the tag of PEER under the layout.
    Check {
        /// The derived SPI.
        derived: String,
        /// The peer SPI it should derive from.
        peer: String,
        #[command(flatten)]
        layout: LayoutArgs,
    },
    /// Print MD5 of the SPI (4 bytes, network order).
    Digest {
        /// SPI, hex or decimal.
        spi: String,
    },
}

fn parse_spi(s: &str) -> Result<u32, String> {
    spi::parse_spi(s).map_err(|e| format!("invalid SPI {s:?}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run_spi(cmd: SpiCmd) -> Result<(), String> {
    match cmd {
        SpiCmd::Derive {
            peer_spi,
            avoid,
            layout,
        } => {
            let peer = parse_spi(&peer_spi)?;
            let mut alloc =
                spi::SpiAllocator::new(Layout::from(layout)).map_err(|e| e.to_string())?;
            for a in &avoid {
                alloc.reserve(parse_spi(a)?);
            }
            let s = alloc
                .allocate(peer, rand::random)
                .map_err(|e| e.to_string())?;
            println!("{s:#010x}");
            Ok(())
        }
        SpiCmd::Check {
            derived,
            peer,
            layout,
        } => {
            let l = Layout::from(layout);
            l.validate().map_err(|e| e.to_string())?;
            let (d, p) = (parse_spi(&derived)?, parse_spi(&peer)?);
            if l.matches(d, p) {
                println!(
                    "match: {d:#010x} carries tag {:#x} of MD5({p:#010x})",
                    l.spi_tag(d)
                );
                Ok(())
            } else {
                Err(format!(
                    "no match: tag {:#x} != digest tag {:#x}",
                    l.spi_tag(d),
                    l.digest_tag(p)
                ))
            }
        }
        SpiCmd::Digest { spi: s } => {
            println!("{}", hex(&spi::digest(parse_spi(&s)?)));
            Ok(())
        }
    }
}

fn run_router(a: RouterArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.config).map_err(|e| format!("{}: {e}", a.config.display()))?;
    let mut cfg: RouterConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", a.config.display()))?;
    if let Some(i) = a.inside_interface {
        cfg.inside.interface = i;
    }
    if let Some(o) = a.outside_interface {
        cfg.outside.interface = o;
    }
    if let Some(m) = a.metrics_listen {
        cfg.metrics.listen = m;
    }
    if let Some(f) = a.capture_drops {
        cfg.capture.drops_file = f;
    }
    cfg.validate()
        .map_err(|e| format!("{}: {e}", a.config.display()))?;
    if a.check {
        println!("{}: ok", a.config.display());
        return Ok(());
    }
    let c = spimux::router::run_until_signal(&cfg).map_err(|e| e.to_string())?;
    println!(
        "stopped: rx inside {} outside {}, tx inside {} outside {}, drops {}",
        c.rx_packets[0],
        c.rx_packets[1],
        c.tx_packets[0],
        c.tx_packets[1],
        c.total_drops()
    );
    Ok(())
}

fn run_endpoint(a: EndpointArgs, role: Role) -> Result<(), String> {
    let name = a.config.display().to_string();
    let text = std::fs::read_to_string(&a.config).map_err(|e| format!("{name}: {e}"))?;
    let mut cfg: EndpointConfig = toml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    if let Some(m) = a.metrics_listen {
        cfg.metrics.listen = m;
    }
    if a.check {
        let prepared = spimux::endpoint::prepare(&cfg, role).map_err(|e| format!("{name}: {e}"))?;
        println!("{name}: ok");
        for t in &prepared.shared.core.tunnels {
            if t.ike {
                println!("peer {}: keyed by IKEv2, inner {:?}", t.name, t.allowed.0);
                continue;
            }
            println!(
                "peer {}: manual keys (legacy), local_spi {:#010x}{} remote_spi {:#010x} inner {:?}",
                t.name,
                t.local_spi,
                if t.derived {
                    " (derived now; a new one is drawn at each start)"
                } else {
                    ""
                },
                t.remote_spi,
                t.allowed.0
            );
        }
        return Ok(());
    }
    let c = spimux::endpoint::run_until_signal(&cfg, role).map_err(|e| format!("{name}: {e}"))?;
    println!(
        "stopped: tun rx {} tx {}, outer rx {} tx {}, drops {}",
        c.tun_rx,
        c.tun_tx,
        c.outer_rx,
        c.outer_tx,
        c.drops.iter().sum::<u64>()
    );
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let r = match Cli::parse().cmd {
        Cmd::Router(a) => run_router(a),
        Cmd::Responder(a) => run_endpoint(a, Role::Responder),
        Cmd::Client(a) => run_endpoint(a, Role::Client),
        Cmd::Spi(c) => run_spi(c),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spimux: {e}");
            ExitCode::FAILURE
        }
    }
}
