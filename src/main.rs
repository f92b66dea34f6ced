//! `spimux` command line: `router`, `responder`, `client`, `spi` (and later `mobile`).

mod show_text;

use clap::{Args, Parser, Subcommand};
use spimux::daemon::control::{self, Request};
use spimux::daemon::log::LogFormat;
use spimux::endpoint::config::{EndpointConfig, Role};
use spimux::endpoint::reload::{ConfigSource as EndpointSource, Overrides as EndpointOverrides};
use spimux::router::config::RouterConfig;
use spimux::router::reload::{ConfigSource, Overrides};
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
    /// Log line format on stderr: text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the NAT router on two interfaces.
    Router(Box<RouterArgs>),
    /// Run the ESP gateway (many peers, derives its inbound SPIs).
    Responder(EndpointArgs),
    /// Run an ESP client (one tunnel to a gateway).
    Client(EndpointArgs),
    /// SPI-hash tools for operators.
    #[command(subcommand)]
    Spi(SpiCmd),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct RouterArgs {
    #[command(subcommand)]
    action: Option<RouterAction>,
    /// TOML configuration file.
    #[arg(long, short, required = true)]
    config: Option<PathBuf>,
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
    /// Override control.socket (empty disables).
    #[arg(long)]
    control_socket: Option<String>,
    /// Override capture.drops_file: write dropped frames to this pcapng file
    /// (rate-limited, drop reason as packet comment; empty = off).
    #[arg(long, value_name = "FILE")]
    capture_drops: Option<String>,
}

#[derive(Subcommand)]
enum RouterAction {
    /// Show the running router's state (through its control socket).
    #[command(subcommand)]
    Show(RouterShow),
    /// Apply the changed configuration file to the running router (as SIGHUP does).
    Reload(SocketArgs),
}

#[derive(Subcommand)]
enum RouterShow {
    /// NAT sessions: inside, external and remote endpoints, TCP state, expiry.
    Translations {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print at most this many (the total is still reported).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Recorded outbound ESP SPIs and inbound SPI bindings.
    Esp {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// ARP cache and unresolved next hops per interface.
    Arp(SocketArgs),
    /// Per inside host: sessions, ports, ESP SPIs, new-session tokens.
    Hosts {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Every configured limit with what is in use now.
    Limits(SocketArgs),
}

#[derive(Args, Default)]
struct FilterArgs {
    /// Only this inside host.
    #[arg(long)]
    host: Option<String>,
    /// Only this protocol (tcp, udp, icmp).
    #[arg(long)]
    proto: Option<String>,
    /// Only this remote address (outside peer or ESP responder).
    #[arg(long, alias = "responder")]
    remote: Option<String>,
}

#[derive(Args)]
struct SocketArgs {
    /// Control socket path (default: control.socket of --config, else
    /// /run/spimux/<daemon>.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Configuration file to read control.socket from.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the daemon's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct EndpointArgs {
    #[command(subcommand)]
    action: Option<EndpointAction>,
    /// TOML configuration file.
    #[arg(long, short, required = true)]
    config: Option<PathBuf>,
    /// Validate the configuration, print the tunnels and exit without starting.
    #[arg(long)]
    check: bool,
    /// Override metrics.listen (empty disables).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Override control.socket (empty disables).
    #[arg(long)]
    control_socket: Option<String>,
}

#[derive(Subcommand)]
enum EndpointAction {
    /// Show the running daemon's state (through its control socket).
    #[command(subcommand)]
    Show(EndpointShow),
    /// Apply the changed configuration file to the running daemon (as SIGHUP does).
    Reload(SocketArgs),
}

#[derive(Subcommand)]
enum EndpointShow {
    /// One line per peer: keying, outer address and encapsulation, SPIs in
    /// use, packet and error counters.
    #[command(alias = "peers")]
    Tunnels(PeerArgs),
    /// IKE SAs: SPIs, state, addresses, suite, NAT, age, rekey timer.
    Ike(PeerArgs),
    /// CHILD_SAs: SPI pairs, suite, selectors, timers, datapath state.
    Child(PeerArgs),
    /// Registration (mobility) state and counters.
    Mobility(PeerArgs),
}

#[derive(Args)]
struct PeerArgs {
    /// Only this peer (its name in the configuration).
    #[arg(long)]
    peer: Option<String>,
    #[command(flatten)]
    socket: SocketArgs,
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

fn run_router(a: RouterArgs, fmt: LogFormat) -> Result<(), String> {
    if let Some(action) = a.action {
        return run_router_action(action);
    }
    let Some(path) = a.config else {
        return Err("--config is required".into());
    };
    let source = ConfigSource {
        path,
        overrides: Overrides {
            inside_interface: a.inside_interface,
            outside_interface: a.outside_interface,
            metrics_listen: a.metrics_listen,
            control_socket: a.control_socket,
            capture_drops: a.capture_drops,
        },
    };
    let cfg = source.load()?;
    if a.check {
        println!("{}: ok", source.path.display());
        return Ok(());
    }
    spimux::daemon::log::init(fmt, &cfg.log.level);
    let c = spimux::router::run_until_signal(&cfg, Some(source)).map_err(|e| e.to_string())?;
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

/// The control socket a client command talks to: `--socket`, else the
/// path `of_config` takes from the `--config` file, else `default`.
fn control_path<C: serde::de::DeserializeOwned>(
    s: &SocketArgs,
    default: &str,
    of_config: impl FnOnce(C) -> String,
) -> Result<PathBuf, String> {
    if let Some(p) = &s.socket {
        return Ok(p.clone());
    }
    let Some(path) = &s.config else {
        return Ok(PathBuf::from(default));
    };
    let socket = of_config(spimux::daemon::reload::read_toml(path)?);
    if socket.is_empty() {
        return Err(format!(
            "{}: control.socket is empty (disabled)",
            path.display()
        ));
    }
    Ok(PathBuf::from(socket))
}

/// Sends `command` with `args` and prints the answer (tables, or `--json`).
fn ask(
    socket: &SocketArgs,
    path: PathBuf,
    command: &str,
    args: impl IntoIterator<Item = (&'static str, Option<String>)>,
) -> Result<(), String> {
    let mut req = Request {
        command: command.into(),
        ..Request::default()
    };
    for (k, v) in args {
        if let Some(v) = v {
            req.args.insert(k.into(), v);
        }
    }
    let data = control::request(&path, &req)?;
    if socket.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", show_text::render(&data));
    }
    Ok(())
}

fn run_router_action(action: RouterAction) -> Result<(), String> {
    let (command, filter, limit, socket) = match action {
        RouterAction::Reload(s) => ("reload", FilterArgs::default(), None, s),
        RouterAction::Show(show) => match show {
            RouterShow::Translations {
                filter,
                limit,
                socket,
            } => ("show translations", filter, limit, socket),
            RouterShow::Esp { filter, socket } => ("show esp", filter, None, socket),
            RouterShow::Arp(s) => ("show arp", FilterArgs::default(), None, s),
            RouterShow::Hosts { filter, socket } => ("show hosts", filter, None, socket),
            RouterShow::Limits(s) => ("show limits", FilterArgs::default(), None, s),
        },
    };
    let default = <spimux::router::config::RouterPort as control::DefaultSocket>::SOCKET;
    let path = control_path(&socket, default, |cfg: RouterConfig| cfg.control.socket)?;
    ask(
        &socket,
        path,
        command,
        [
            ("host", filter.host),
            ("proto", filter.proto),
            ("remote", filter.remote),
            ("limit", limit.map(|n| n.to_string())),
        ],
    )
}

fn run_endpoint_action(action: EndpointAction, role: Role) -> Result<(), String> {
    let (command, peer, socket) = match action {
        EndpointAction::Reload(s) => ("reload", None, s),
        EndpointAction::Show(show) => match show {
            EndpointShow::Tunnels(a) => ("show tunnels", a.peer, a.socket),
            EndpointShow::Ike(a) => ("show ike", a.peer, a.socket),
            EndpointShow::Child(a) => ("show child", a.peer, a.socket),
            EndpointShow::Mobility(a) => ("show mobility", a.peer, a.socket),
        },
    };
    let default = spimux::endpoint::config::ControlConfig::default().path(role);
    let path = control_path(&socket, &default, |cfg: EndpointConfig| {
        cfg.control.path(role)
    })?;
    ask(&socket, path, command, [("peer", peer)])
}

fn run_endpoint(a: EndpointArgs, role: Role, fmt: LogFormat) -> Result<(), String> {
    if let Some(action) = a.action {
        return run_endpoint_action(action, role);
    }
    let Some(path) = a.config else {
        return Err("--config is required".into());
    };
    let source = EndpointSource {
        path,
        overrides: EndpointOverrides {
            metrics_listen: a.metrics_listen,
            control_socket: a.control_socket,
        },
    };
    let name = source.path.display().to_string();
    let cfg = source.read()?;
    spimux::daemon::log::init(fmt, &cfg.log.level);
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
    let c = spimux::endpoint::run_until_signal(&cfg, role, Some(source))
        .map_err(|e| format!("{name}: {e}"))?;
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
    let cli = Cli::parse();
    let fmt = cli.log_format;
    let r = match cli.cmd {
        Cmd::Router(a) => run_router(*a, fmt),
        Cmd::Responder(a) => run_endpoint(a, Role::Responder, fmt),
        Cmd::Client(a) => run_endpoint(a, Role::Client, fmt),
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
