//! Where the router's configuration comes from, and applying a changed file
//! to the running router (SIGHUP or `spimux router reload`) without losing
//! a table entry or a flow. A file that does not parse or validate, or that
//! changes something only a restart can apply, is refused as a whole: the
//! configuration in force stays, and the refusal is logged and counted.

use super::config::RouterConfig;
use super::Shared;
use crate::daemon::reload::{apply_log, changed, finish, source, Refusal};
pub use crate::daemon::reload::{ReloadResult, ReloadStats, Reloaded};

/// Command-line values that replace the file's (at start and every reload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `inside.interface`.
    pub inside_interface: Option<String>,
    /// `outside.interface`.
    pub outside_interface: Option<String>,
    /// `metrics.listen`.
    pub metrics_listen: Option<String>,
    /// `control.socket`.
    pub control_socket: Option<String>,
    /// `capture.drops_file`.
    pub capture_drops: Option<String>,
}

/// The router's configuration file and its overrides.
pub type ConfigSource = crate::daemon::reload::ConfigSource<Overrides>;

impl ConfigSource {
    /// Reads, parses, overrides and validates; the error names the file and
    /// the field.
    pub fn load(&self) -> Result<RouterConfig, String> {
        let name = self.path.display();
        let mut cfg: RouterConfig = self.parse()?;
        let o = &self.overrides;
        if let Some(i) = &o.inside_interface {
            cfg.inside.interface = i.clone();
        }
        if let Some(i) = &o.outside_interface {
            cfg.outside.interface = i.clone();
        }
        if let Some(m) = &o.metrics_listen {
            cfg.metrics.listen = m.clone();
        }
        if let Some(s) = &o.control_socket {
            cfg.control.socket = s.clone();
        }
        if let Some(f) = &o.capture_drops {
            cfg.capture.drops_file = f.clone();
        }
        cfg.validate().map_err(|e| format!("{name}: {e}"))?;
        Ok(cfg)
    }
}

/// The live-applicable tables that differ between `old` and `new`.
fn changed_tables(old: &RouterConfig, new: &RouterConfig) -> Vec<&'static str> {
    changed([
        ("nat", old.nat != new.nat),
        ("esp", old.esp != new.esp),
        ("arp", old.arp != new.arp),
        ("icmp", old.icmp != new.icmp),
        ("log", old.log != new.log),
        ("capture", old.capture != new.capture),
    ])
}

/// Reads the router's configuration source again and applies what changed.
/// On refusal the error says why and the configuration in force is kept.
pub fn reload(shared: &Shared) -> Result<Reloaded, String> {
    finish(&shared.reloads, try_reload(shared))
}

fn try_reload(shared: &Shared) -> Result<Reloaded, Refusal> {
    let source = source(&shared.source)?;
    let new = source.load().map_err(|e| (ReloadResult::Invalid, e))?;
    // One reload at a time: the lock spans compare, apply and store.
    let mut in_force = shared.config.lock();
    let changed = changed_tables(&in_force, &new);
    if let Some(table) = in_force.restart_field_changed(&new) {
        return Err(source.refuse(
            ReloadResult::NeedsRestart,
            format!("[{table}] changed, which needs a restart"),
        ));
    }
    if changed.is_empty() {
        return Ok(Reloaded::of(changed));
    }
    // Everything is checked before anything is applied; the capture opens
    // a file (which can still fail), so it is applied first.
    shared
        .fwd
        .check_reconfigure(&in_force, &new)
        .map_err(|e| source.refuse(ReloadResult::NeedsRestart, e))?;
    if new.capture != in_force.capture {
        shared
            .capture
            .apply(&new.capture)
            .map_err(|e| source.refuse(ReloadResult::Invalid, e))?;
    }
    shared
        .fwd
        .reconfigure(&in_force, &new)
        .map_err(|e| source.refuse(ReloadResult::NeedsRestart, e))?;
    apply_log(&in_force.log, &new.log);
    *in_force = new;
    Ok(Reloaded::of(changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::control::Request;
    use crate::router::forwarding::{Forwarding, Interfaces};
    use crate::wire::ethernet::Mac;
    use std::path::PathBuf;

    const BASE: &str = "[inside]\ninterface = \"a\"\naddress = \"10.6.1.1/24\"\n\
        [outside]\ninterface = \"b\"\naddress = \"203.0.113.10/24\"\ngateway = \"203.0.113.1\"\n\
        [control]\nsocket = \"\"\n";

    /// A router core (no devices) started from a file holding `text`.
    fn shared(name: &str, text: &str) -> (Shared, PathBuf) {
        let path =
            std::env::temp_dir().join(format!("spimux-reload-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let source = ConfigSource {
            path: path.clone(),
            overrides: Overrides {
                inside_interface: Some("lan9".into()),
                ..Overrides::default()
            },
        };
        let cfg = source.load().unwrap();
        assert_eq!(cfg.inside.interface, "lan9", "overrides apply");
        let ifaces = Interfaces {
            macs: [Mac([2, 0, 0, 0, 1, 1]), Mac([2, 0, 0, 0, 1, 2])],
            mtus: [1500; 2],
        };
        let fwd = Forwarding::new(&cfg, ifaces, 1).unwrap();
        let mut s = Shared::new(fwd, cfg, 1, "memory");
        s.source = Some(source);
        (s, path)
    }

    fn show(s: &Shared, command: &str) -> Result<serde_json::Value, String> {
        crate::router::show::answer(
            s,
            &Request {
                command: command.into(),
                ..Request::default()
            },
        )
    }

    #[test]
    fn a_changed_limit_applies_and_is_counted() {
        let (s, path) = shared("apply", BASE);
        let r = reload(&s).unwrap();
        assert_eq!((r.result, r.changed.len()), ("unchanged", 0));
        let text = format!(
            "{BASE}[nat.limits]\nmax_sessions_per_host = 4096\n[icmp]\nerrors_per_sec = 10\n"
        );
        std::fs::write(&path, text).unwrap();
        let r = show(&s, "reload").unwrap();
        assert_eq!(r["result"], "applied");
        assert_eq!(r["changed"], serde_json::json!(["nat", "icmp"]));
        assert_eq!(s.fwd.nat.table.config().limits.max_sessions_per_host, 4096);
        assert_eq!(s.config.lock().icmp.errors_per_sec, 10);
        assert_eq!(s.reloads.get(ReloadResult::Applied), 1);
        assert_eq!(s.reloads.get(ReloadResult::Unchanged), 1);
        let limits = show(&s, "show limits").unwrap();
        let row = limits["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["limit"] == "nat.limits.max_sessions_per_host")
            .unwrap()
            .clone();
        assert_eq!(row["max"], 4096);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_invalid_or_restart_only_change_is_refused_whole() {
        let (s, path) = shared("refuse", BASE);
        let before = s.config.lock().clone();
        // Invalid: the error names the field; nothing changes.
        let text = format!("{BASE}[nat.limits]\nmax_sessions_per_host = 0\n");
        std::fs::write(&path, text).unwrap();
        let e = reload(&s).unwrap_err();
        assert!(e.contains("nat.limits.max_sessions_per_host"), "{e}");
        // Restart-only: a new inside address, with a limit change beside it.
        let moved = BASE.replace("10.6.1.1/24", "10.6.2.1/24");
        std::fs::write(&path, format!("{moved}[nat.limits]\nmax_sessions = 1000\n")).unwrap();
        let e = reload(&s).unwrap_err();
        assert!(e.contains("[inside]") && e.contains("restart"), "{e}");
        // A NAT field only a restart can apply, named by the core.
        std::fs::write(&path, format!("{BASE}[nat]\nport_min = 2000\n")).unwrap();
        let e = reload(&s).unwrap_err();
        assert!(e.contains("nat.port_min"), "{e}");
        // Unreadable.
        std::fs::write(&path, "[inside\n").unwrap();
        assert!(reload(&s).is_err());
        assert_eq!(*s.config.lock(), before);
        assert_eq!(s.fwd.nat.table.config(), before.nat);
        assert_eq!(s.reloads.get(ReloadResult::Invalid), 2);
        assert_eq!(s.reloads.get(ReloadResult::NeedsRestart), 2);
        assert_eq!(s.reloads.get(ReloadResult::Applied), 0);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn show_commands_answer_and_refuse_bad_arguments() {
        let (s, path) = shared("show", BASE);
        assert!(show(&s, "show translations").unwrap()["translations"].is_array());
        assert!(show(&s, "show arp").unwrap()["neighbours_inside"].is_array());
        assert!(show(&s, "show esp").unwrap()["bindings"].is_array());
        assert!(show(&s, "show hosts").unwrap()["hosts"].is_array());
        assert!(show(&s, "show routes")
            .unwrap_err()
            .contains("unknown command"));
        let mut bad = Request {
            command: "show translations".into(),
            ..Request::default()
        };
        bad.args.insert("host".into(), "10.6.1".into());
        let e = crate::router::show::answer(&s, &bad).unwrap_err();
        assert!(e.starts_with("host"), "{e}");
        bad.args.clear();
        bad.args.insert("proto".into(), "sctp".into());
        assert!(crate::router::show::answer(&s, &bad)
            .unwrap_err()
            .contains("tcp, udp, icmp"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn arp_and_icmp_settings_round_trip_through_their_words() {
        use crate::live::Words;
        use crate::router::config::{Arp, Icmp};
        let a = Arp {
            cache_timeout: 1,
            retry_ms: 2,
            max_requests: 3,
            queue_per_hop: 4,
            max_pending_hops: 5,
            max_entries: 6,
        };
        assert_eq!(Arp::from_words(a.to_words()), a);
        let i = Icmp {
            errors_per_sec: 7,
            errors_burst: 8,
        };
        assert_eq!(Icmp::from_words(i.to_words()), i);
    }
}
