//! The endpoint's control-socket commands (`spimux responder|client show
//! tunnels|ike|child|mobility`, filtered by `peer`, and `reload`). Tunnel
//! state is copied under each tunnel's locks once; the IKE SAs are listed
//! by the IKE thread, which owns them. Nothing runs on a packet thread.

use super::ike_handoff::IkeInput;
use super::registration::Agent;
use super::runtime::Shared;
use super::tunnel_status::TunnelStatus;
use crate::daemon::control::Request;
use crate::ike::listing::Listing;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a listing waits for room in the IKE thread's queue.
const IKE_WAIT: Duration = Duration::from_secs(2);

/// Answers one control request.
pub fn answer(shared: &Shared, req: &Request) -> Result<Value, String> {
    let peer = req.args.get("peer").map(String::as_str);
    if let Some(p) = peer {
        if !shared.core.tunnels.iter().any(|t| t.name == p) {
            return Err(format!("peer {p:?}: no such peer"));
        }
    }
    let keeps = |name: &str| peer.is_none_or(|p| p == name);
    let tunnels = || -> Vec<TunnelStatus> {
        shared
            .core
            .tunnels
            .iter()
            .filter(|t| keeps(&t.name))
            .map(|t| t.status())
            .collect()
    };
    Ok(match req.command.as_str() {
        "show tunnels" => json!({ "tunnels": tunnels() }),
        "show ike" => json!({ "ike_sas": ike(shared, peer)?.ike_sas }),
        "show child" => json!({ "child_sas": child(ike(shared, peer)?, &tunnels()) }),
        "show mobility" => mobility(shared, &keeps),
        "reload" => {
            serde_json::to_value(super::reload::reload(shared)?).map_err(|e| e.to_string())?
        }
        other => return Err(format!("unknown command {other:?}")),
    })
}

/// The IKE thread's listing (empty when no peer is keyed by IKE).
fn ike(shared: &Shared, peer: Option<&str>) -> Result<Listing, String> {
    let Some(k) = &shared.keying else {
        return Ok(Listing::default());
    };
    let peer = peer.map(str::to_string);
    k.ask(IKE_WAIT, |reply| IkeInput::List { peer, reply })
        .map_err(str::to_string)
}

/// CHILD_SAs with what the datapath holds for each: whether its ESP SAs
/// are installed and their sequence numbers.
fn child(l: Listing, tunnels: &[TunnelStatus]) -> Vec<Value> {
    let hex = |spi: u32| format!("{spi:#010x}");
    l.child_sas
        .into_iter()
        .map(|c| {
            let t = tunnels.iter().find(|t| t.peer == c.peer);
            let rx = t.and_then(|t| t.inbound.iter().find(|s| hex(s.spi) == c.inbound_spi));
            let tx = t.and_then(|t| {
                t.outbound
                    .iter()
                    .enumerate()
                    .find(|(_, s)| hex(s.spi) == c.outbound_spi)
                    .map(|(i, s)| (i, s.seq))
            });
            let mut v = json!(c);
            if let Some(m) = v.as_object_mut() {
                m.insert("rx_seq".into(), json!(rx.map(|s| s.seq)));
                m.insert("tx_seq".into(), json!(tx.map(|(_, seq)| seq)));
                // in use: sending on it; standby: installed, takes over once
                // the peer uses the new pair (gateway side of a rekey).
                let sending = match tx {
                    Some((0, _)) => "in_use",
                    Some(_) => "standby",
                    None if rx.is_some() => "inbound_only",
                    None => "not_installed",
                };
                m.insert("datapath".into(), json!(sending));
            }
            v
        })
        .collect()
}

/// The registration state: the client's state machine, or the gateway's
/// last accepted registration per peer.
fn mobility(shared: &Shared, keeps: &dyn Fn(&str) -> bool) -> Value {
    let m = &shared.core.mobility;
    let s = m.stats.lock().clone();
    let counts = json!({
        "accepted": s.accepted,
        "refused": s.refused,
        "fallbacks": s.fallbacks,
        "requests_sent": s.rreq_tx,
        "requests_received": s.rreq_rx,
        "replies_sent": s.rrep_tx,
        "replies_received": s.rrep_rx,
        "unproven_moves": s.unproven_moves,
        "proofs": s.proofs,
        "replies_wrong_source": s.reply_wrong_source,
    });
    match &m.agent {
        Agent::Off => json!({ "mobility": "off" }),
        Agent::Client {
            core,
            gateway_inner,
            gateway_outer,
        } => json!({
            "mobility": "client",
            "gateway_inner": gateway_inner,
            "gateway_outer": gateway_outer,
            "state": core.lock().status(),
            "counters": counts,
        }),
        Agent::Gateway { policy, regs } => {
            let peers: Vec<Value> = shared
                .core
                .tunnels
                .iter()
                .zip(regs)
                .filter(|(t, _)| keeps(&t.name))
                .map(|(t, r)| {
                    let mut v = json!(r.lock().status());
                    if let Some(o) = v.as_object_mut() {
                        o.insert("peer".into(), json!(t.name));
                        o.insert(
                            "unproven".into(),
                            json!(t.proving.load(std::sync::atomic::Ordering::Relaxed)),
                        );
                    }
                    v
                })
                .collect();
            json!({
                "mobility": "gateway",
                "keepalive_secs": policy.keepalive_secs,
                "plain_esp": policy.allow_plain,
                "registrations": peers,
                "counters": counts,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::config::{EndpointConfig, Role};

    fn ask(s: &Shared, command: &str, peer: Option<&str>) -> Result<Value, String> {
        let mut req = Request {
            command: command.into(),
            ..Request::default()
        };
        if let Some(p) = peer {
            req.args.insert("peer".into(), p.into());
        }
        answer(s, &req)
    }

    #[test]
    fn tunnels_and_mobility_answer_without_the_ike_thread_and_bad_requests_are_refused() {
        let cfg: EndpointConfig =
            toml::from_str(include_str!("../../config/responder.toml")).unwrap();
        let p = crate::endpoint::prepare(&cfg, Role::Responder).unwrap();
        let s = &p.shared;
        let t = ask(s, "show tunnels", None).unwrap();
        let rows = t["tunnels"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["peer"], "h1");
        assert_eq!(rows[0]["keying"], "ike");
        assert_eq!(rows[0]["encap"], "none", "no peer address before IKE");
        assert_eq!(rows[0]["inner"], serde_json::json!(["10.98.0.2/32"]));
        let one = ask(s, "show tunnels", Some("m1")).unwrap();
        assert_eq!(one["tunnels"].as_array().unwrap().len(), 1);
        let m = ask(s, "show mobility", Some("m1")).unwrap();
        assert_eq!(m["mobility"], "gateway");
        assert_eq!(m["registrations"][0]["peer"], "m1");
        assert_eq!(m["registrations"][0]["last_id"], Value::Null);
        let e = ask(s, "show tunnels", Some("nobody")).unwrap_err();
        assert!(e.contains("no such peer"), "{e}");
        let e = ask(s, "show everything", None).unwrap_err();
        assert!(e.contains("unknown command"), "{e}");
        // Started without a file: a reload is refused, not half-done.
        let e = ask(s, "reload", None).unwrap_err();
        assert!(e.contains("without a configuration file"), "{e}");
    }
}
