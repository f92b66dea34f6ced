//! The router's control-socket commands: `show translations|esp|arp|hosts|
//! limits` (filtered by inside host, protocol, remote or responder) and
//! `reload`. Answers are JSON; the command line prints them as tables.
//! Everything is read on the control thread from the shared tables, one
//! shard at a time (see `nat::table::listing`), never on a dataplane thread.

use super::reload;
use super::stats::Side;
use super::Shared;
use crate::daemon::control::Request;
use crate::nat::table::listing::Filter;
use crate::nat::Proto;
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// Answers one control request.
pub fn answer(shared: &Shared, req: &Request) -> Result<Value, String> {
    let filter = filter(req)?;
    let now = shared.now();
    let fwd = &shared.fwd;
    let data = match req.command.as_str() {
        "show translations" => {
            let mut rows = fwd.nat.table.translations(&filter, now);
            let total = rows.len();
            if let Some(n) = limit(req)? {
                rows.truncate(n);
            }
            json!({ "translations": rows, "total": total })
        }
        "show hosts" => json!({ "hosts": fwd.nat.table.host_usage(&filter, now) }),
        "show esp" => {
            let (spis, bindings) = fwd.nat.esp.listing(&filter, now);
            json!({ "recorded_spis": spis, "bindings": bindings })
        }
        "show arp" => arp(shared),
        "show limits" => limits(shared, now),
        "reload" => serde_json::to_value(reload::reload(shared)?).map_err(|e| e.to_string())?,
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(data)
}

/// The filter arguments: `host`, `proto`, `remote` (`responder` is the
/// same as `remote`).
fn filter(req: &Request) -> Result<Filter, String> {
    let ip = |name: &str| -> Result<Option<Ipv4Addr>, String> {
        req.args
            .get(name)
            .map(|v| v.parse().map_err(|e| format!("{name} {v:?}: {e}")))
            .transpose()
    };
    let proto = match req.args.get("proto").map(String::as_str) {
        None => None,
        Some(p) => Some(
            Proto::ALL
                .iter()
                .find(|x| x.label() == p)
                .ok_or_else(|| format!("proto {p:?}: one of tcp, udp, icmp"))?
                .number(),
        ),
    };
    Ok(Filter {
        host: ip("host")?,
        proto,
        remote: ip("remote")?.or(ip("responder")?),
    })
}

fn limit(req: &Request) -> Result<Option<usize>, String> {
    req.args
        .get("limit")
        .map(|v| v.parse().map_err(|e| format!("limit {v:?}: {e}")))
        .transpose()
}

fn arp(shared: &Shared) -> Value {
    let now = shared.now();
    let a = &shared.fwd.arp;
    let mut out = serde_json::Map::new();
    for side in [Side::Inside, Side::Outside] {
        let cached: Vec<Value> = a
            .neighbours(side, now)
            .into_iter()
            .map(|(ip, mac, left)| {
                json!({ "interface": side.label(), "ip": ip, "mac": mac.to_string(),
                        "expires_in": left / 1000 })
            })
            .collect();
        let pending: Vec<Value> = a
            .unresolved(side)
            .into_iter()
            .map(|(ip, queued, requests)| {
                json!({ "interface": side.label(), "ip": ip, "queued_frames": queued,
                        "requests_sent": requests })
            })
            .collect();
        out.insert(format!("neighbours_{}", side.label()), cached.into());
        out.insert(format!("unresolved_{}", side.label()), pending.into());
    }
    Value::Object(out)
}

/// Each configured limit with what is in use now.
fn limits(shared: &Shared, now: crate::nat::Millis) -> Value {
    let cfg = shared.config.lock().clone();
    let fwd = &shared.fwd;
    let t = &fwd.nat.table;
    let esp = &fwd.nat.esp;
    let hosts = t.host_usage(&Filter::default(), now);
    let most_sessions = hosts.iter().map(|h| h.sessions).max().unwrap_or(0);
    let most_spis = hosts.iter().map(|h| h.esp_spis).max().unwrap_or(0);
    let by_proto = t.mapping_count_by_proto();
    // Each external address has its own port range per protocol.
    let range = (u64::from(cfg.nat.port_max.saturating_sub(cfg.nat.port_min)) + 1)
        .saturating_mul(t.external().len() as u64);
    let l = &cfg.nat.limits;
    let e = &cfg.esp;
    let mut rows = vec![
        row(
            "nat.limits.max_sessions",
            t.session_total().into(),
            l.max_sessions.into(),
        ),
        row(
            "nat.limits.max_hosts",
            t.host_count() as u64,
            l.max_hosts.into(),
        ),
        row(
            "nat.limits.max_sessions_per_host",
            most_sessions.into(),
            l.max_sessions_per_host.into(),
        ),
        row(
            "nat.limits.max_ports_per_host",
            t.max_host_ports() as u64,
            l.max_ports_per_host.into(),
        ),
        row(
            "nat.limits.max_esp_spis_per_host",
            most_spis.into(),
            l.max_esp_spis_per_host.into(),
        ),
    ];
    for p in Proto::ALL {
        let used = by_proto.get(p as usize).copied().unwrap_or(0) as u64;
        let name = format!("nat.port_min..port_max ({})", p.label());
        rows.push(row(&name, used, range));
    }
    rows.extend([
        row(
            "esp.max_spis",
            esp.recorded_count() as u64,
            e.max_spis.into(),
        ),
        row(
            "esp.max_bindings",
            esp.binding_count() as u64,
            e.max_bindings.into(),
        ),
        row(
            "esp.max_bindings_per_responder",
            esp.max_responder_bindings() as u64,
            e.max_bindings_per_responder.into(),
        ),
    ]);
    for side in [Side::Inside, Side::Outside] {
        let (label, a) = (side.label(), &fwd.arp);
        let entries = format!("arp.max_entries ({label})");
        rows.push(row(
            &entries,
            a.len_on(side) as u64,
            cfg.arp.max_entries as u64,
        ));
        let pending = format!("arp.max_pending_hops ({label})");
        rows.push(row(
            &pending,
            a.pending_on(side) as u64,
            cfg.arp.max_pending_hops as u64,
        ));
    }
    json!({
        "limits": rows,
        "rates": [
            { "limit": "nat.limits.new_sessions_per_sec_per_host", "value": l.new_sessions_per_sec_per_host,
              "burst": l.new_sessions_burst },
            { "limit": "esp.resolve_per_sec_per_responder", "value": e.resolve_per_sec_per_responder,
              "burst": e.resolve_burst },
            { "limit": "icmp.errors_per_sec", "value": cfg.icmp.errors_per_sec,
              "burst": cfg.icmp.errors_burst },
        ],
    })
}

fn row(name: &str, in_use: u64, max: u64) -> Value {
    json!({ "limit": name, "in_use": in_use, "max": max })
}
