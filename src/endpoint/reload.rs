//! Where an endpoint's configuration comes from, and applying a changed
//! file to the running responder or client (SIGHUP or `spimux responder|
//! client reload`) without touching a tunnel. Applied live: `[log]`, the
//! `[ike]` limits and timers, and every IKE peer's `[peers.ike]`
//! (credentials, identities, proposals, lifetimes, DPD, selectors), which
//! new negotiations, rekeys and authentications use; established SAs keep
//! their keys. Anything else (the TUN device, sockets, the list of peers,
//! their inner networks, addresses and manual keys, mobility) needs a
//! restart: such a file is refused whole, logged and counted, and the
//! configuration in force stays (docs/OPERATIONS.md).

use super::config::{EndpointConfig, PeerConfig, Role};
use super::ike_handoff::IkeInput;
use super::runtime::Shared;
use crate::daemon::reload::{apply_log, changed, finish, source, Refusal, ReloadResult, Reloaded};
use crate::ike::{EngineConfig, PeerPolicy};
use crate::spi::SpiAllocator;
use std::time::Duration;

/// Command-line values that replace the file's (at start and every reload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `metrics.listen`.
    pub metrics_listen: Option<String>,
    /// `control.socket`.
    pub control_socket: Option<String>,
}

/// The endpoint's configuration file and its overrides.
pub type ConfigSource = crate::daemon::reload::ConfigSource<Overrides>;

impl ConfigSource {
    /// Reads, parses and overrides (not validated: `prepare` and
    /// `reload` do that); the error names the file.
    pub fn read(&self) -> Result<EndpointConfig, String> {
        let mut cfg: EndpointConfig = self.parse()?;
        if let Some(m) = &self.overrides.metrics_listen {
            cfg.metrics.listen = m.clone();
        }
        if let Some(s) = &self.overrides.control_socket {
            cfg.control.socket = Some(s.clone());
        }
        Ok(cfg)
    }
}

/// The engine settings and IKE peer policies of a configuration, checked
/// as at start (certificate and key files read); the error names the field.
pub fn keying(
    cfg: &EndpointConfig,
    role: Role,
) -> Result<(EngineConfig, Vec<PeerPolicy>), super::StartError> {
    let mut alloc =
        SpiAllocator::new(cfg.spi_layout).map_err(|e| super::config_err("spi_layout".into(), e))?;
    let peers = cfg.resolve(role, &mut alloc, rand::random)?;
    let (policies, _) = super::ike_setup::policies(cfg, role, &peers)?;
    Ok((super::ike_setup::engine_config(cfg)?, policies))
}

/// The first setting that differs and only a restart can apply.
pub fn restart_field(old: &EndpointConfig, new: &EndpointConfig) -> Option<String> {
    // Destructured so that a new field must be sorted here.
    let EndpointConfig {
        tun,
        outer,
        spi_layout,
        metrics,
        mobility,
        ike,
        peers,
        control,
        log: _,
    } = old;
    let tables = [
        ("tun", *tun != new.tun),
        ("outer", *outer != new.outer),
        ("spi_layout", *spi_layout != new.spi_layout),
        ("metrics", *metrics != new.metrics),
        ("mobility", *mobility != new.mobility),
        ("control", *control != new.control),
        ("ike.port", ike.port != new.ike.port),
        ("ike.key_log", ike.key_log != new.ike.key_log),
        ("peers (added or removed)", peers.len() != new.peers.len()),
    ];
    if let Some((t, _)) = tables.iter().find(|(_, c)| *c) {
        return Some((*t).to_string());
    }
    peers
        .iter()
        .zip(&new.peers)
        .enumerate()
        .find_map(|(i, (a, b))| {
            let PeerConfig {
                name,
                inner,
                remote,
                ike,
                manual,
                replay_window,
                keepalive_secs,
            } = a;
            [
                ("name", *name != b.name),
                ("inner", *inner != b.inner),
                ("remote", *remote != b.remote),
                ("ike", ike.is_some() != b.ike.is_some()),
                ("manual", *manual != b.manual),
                ("replay_window", *replay_window != b.replay_window),
                ("keepalive_secs", *keepalive_secs != b.keepalive_secs),
            ]
            .iter()
            .find(|(_, c)| *c)
            .map(|(f, _)| format!("peers[{i}].{f}"))
        })
}

/// Reads the endpoint's configuration source again and applies what
/// changed. On refusal the error says why and the configuration in force
/// is kept.
pub fn reload(shared: &Shared) -> Result<Reloaded, String> {
    finish(&shared.reloads, try_reload(shared))
}

fn try_reload(shared: &Shared) -> Result<Reloaded, Refusal> {
    let source = source(&shared.source)?;
    let new = source.read().map_err(|e| (ReloadResult::Invalid, e))?;
    let settings =
        keying(&new, shared.role).map_err(|e| source.refuse(ReloadResult::Invalid, e))?;
    // One reload at a time: the lock spans compare, apply and store.
    let mut in_force = shared.config.lock();
    if let Some(field) = restart_field(&in_force, &new) {
        return Err(source.refuse(
            ReloadResult::NeedsRestart,
            format!("{field} changed, which needs a restart"),
        ));
    }
    let changed = changed([
        ("ike", in_force.ike != new.ike),
        ("peers.ike", in_force.peers != new.peers),
        ("log", in_force.log != new.log),
    ]);
    if changed.is_empty() {
        return Ok(Reloaded::of(changed));
    }
    if let (Some(k), true) = (
        &shared.keying,
        in_force.ike != new.ike || in_force.peers != new.peers,
    ) {
        let (config, policies) = settings;
        k.ask(Duration::from_secs(5), |reply| IkeInput::Reconfigure {
            config: Box::new(config),
            policies,
            reply,
        })
        .map_err(|e| source.refuse(ReloadResult::Invalid, e))?
        .map_err(|e| source.refuse(ReloadResult::NeedsRestart, e))?;
    }
    apply_log(&in_force.log, &new.log);
    *in_force = new;
    Ok(Reloaded::of(changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> EndpointConfig {
        toml::from_str(include_str!("../../config/responder.toml")).unwrap()
    }

    #[test]
    fn only_log_ike_and_peer_ike_settings_change_without_a_restart() {
        let old = responder();
        let mut new = old.clone();
        new.log.level = "debug".into();
        new.ike.max_half_open = 10;
        if let Some(ike) = new.peers[1].ike.as_mut() {
            ike.psk = Some("another-pre-shared-key-of-enough-length".into());
            ike.dpd_secs = 5;
        }
        assert_eq!(restart_field(&old, &new), None);
        let (cfg, policies) = keying(&new, Role::Responder).unwrap();
        assert_eq!((cfg.max_half_open, policies.len()), (10, 3));
        assert_eq!(policies[1].dpd_ms, 5000);
        let changed_by = |f: &dyn Fn(&mut EndpointConfig)| {
            let mut c = old.clone();
            f(&mut c);
            restart_field(&old, &c)
        };
        let named = |s: &str| Some(s.to_string());
        assert_eq!(changed_by(&|c| c.tun.mtu = 1300), named("tun"));
        assert_eq!(changed_by(&|c| c.ike.port = 5000), named("ike.port"));
        assert_eq!(changed_by(&|c| c.mobility.port = 435), named("mobility"));
        assert_eq!(
            changed_by(&|c| c.control.socket = Some(String::new())),
            named("control")
        );
        assert_eq!(
            changed_by(&|c| {
                c.peers.pop();
            }),
            named("peers (added or removed)")
        );
        assert_eq!(changed_by(&|c| c.peers.swap(0, 1)), named("peers[0].name"));
        assert_eq!(
            changed_by(&|c| c.peers[2].inner = vec!["10.98.0.9/32".parse().unwrap()]),
            named("peers[2].inner")
        );
        assert_eq!(
            changed_by(&|c| c.peers[0].replay_window = 256),
            named("peers[0].replay_window")
        );
    }
}
