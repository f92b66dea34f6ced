//! Prometheus text exposition at `GET /metrics`.
//!
//! Counters are folded from the per-thread slots at scrape time; gauges are
//! read from the shared tables.

use super::forwarding::icmp_errors::Suppressed;
use super::stats::{CaptureResult, Counters, DropReason, Side};
use super::Shared;
use crate::daemon::metrics::{build_info, one, Families, Sample};
use crate::nat::{NatDrop, Proto};

fn per_side(v: [u64; 2]) -> Vec<Sample<'static>> {
    [Side::Inside, Side::Outside]
        .iter()
        .map(|s| (vec![("interface", s.label())], v[*s as usize] as f64))
        .collect()
}

fn per_proto(v: [u64; 3]) -> Vec<Sample<'static>> {
    Proto::ALL
        .iter()
        .map(|p| (vec![("protocol", p.label())], v[*p as usize] as f64))
        .collect()
}

/// Renders the whole exposition text.
pub fn render(shared: &Shared) -> String {
    let c: Counters = shared.stats.total();
    let mut f = Families::default();
    f.counter(
        "spimux_rx_packets_total",
        "Frames received per data interface.",
        per_side(c.rx_packets),
    );
    f.counter(
        "spimux_rx_bytes_total",
        "Bytes received per data interface.",
        per_side(c.rx_bytes),
    );
    f.counter(
        "spimux_tx_packets_total",
        "Frames sent per data interface.",
        per_side(c.tx_packets),
    );
    f.counter(
        "spimux_tx_bytes_total",
        "Bytes sent per data interface.",
        per_side(c.tx_bytes),
    );
    f.counter(
        "spimux_drops_total",
        "Frames dropped, by reason.",
        DropReason::all()
            .map(|d| (vec![("reason", d.label())], c.drops[d.index()] as f64))
            .collect(),
    );
    let n = &c.nat;
    f.counter(
        "spimux_nat_sessions_created_total",
        "NAT sessions created, by protocol.",
        per_proto(n.created),
    );
    f.counter(
        "spimux_nat_sessions_expired_total",
        "NAT sessions expired, by protocol.",
        per_proto(n.expired),
    );
    f.counter(
        "spimux_nat_icmp_errors_translated_total",
        "ICMP errors whose quoted packet was translated.",
        one(n.icmp_errors_translated),
    );
    f.counter(
        "spimux_nat_hairpinned_total",
        "Packets hairpinned from inside to an external address.",
        one(n.hairpinned),
    );
    f.counter(
        "spimux_esp_spis_recorded_total",
        "Outbound ESP SPIs recorded.",
        one(n.esp.spis_recorded),
    );
    f.counter(
        "spimux_esp_matches_total",
        "Unknown inbound SPIs bound to an inside host, by relation.",
        vec![
            (
                vec![("relation", "responder_derived")],
                n.esp.matched_responder_derived as f64,
            ),
            (
                vec![("relation", "inside_derived")],
                n.esp.matched_inside_derived as f64,
            ),
            (
                vec![("relation", "single_pending_fallback")],
                n.esp.fallback_binds as f64,
            ),
        ],
    );
    f.counter(
        "spimux_esp_collisions_total",
        "Inbound ESP dropped: SPI matched several inside hosts.",
        one(n.drops[NatDrop::EspCollision as usize]),
    );
    f.counter(
        "spimux_esp_unmatched_total",
        "Inbound ESP dropped: SPI matched no inside host.",
        one(n.drops[NatDrop::EspUnmatched as usize]),
    );
    f.counter(
        "spimux_esp_bound_packets_total",
        "Inbound ESP forwarded on an existing binding.",
        one(n.esp.bound_packets),
    );
    f.counter(
        "spimux_esp_bindings_expired_total",
        "Inbound SPI bindings expired.",
        one(n.esp.bindings_expired),
    );
    f.counter(
        "spimux_esp_spis_expired_total",
        "Recorded outbound SPIs expired.",
        one(n.esp.spis_expired),
    );
    f.counter(
        "spimux_arp_requests_sent_total",
        "ARP requests sent.",
        one(c.arp_requests_sent),
    );
    f.counter(
        "spimux_arp_replies_sent_total",
        "ARP requests answered.",
        one(c.arp_replies_sent),
    );
    f.counter(
        "spimux_icmp_sent_total",
        "ICMP messages originated by the router.",
        one(c.icmp_sent),
    );
    f.counter(
        "spimux_icmp_errors_suppressed_total",
        "ICMP errors the router did not send: rate limit (icmp.errors_per_sec), source not one unicast host, or about an ICMP error.",
        Suppressed::ALL
            .iter()
            .map(|r| {
                (
                    vec![("reason", r.label())],
                    c.icmp_errors_suppressed[*r as usize] as f64,
                )
            })
            .collect(),
    );
    f.counter(
        "spimux_arp_cache_full_total",
        "ARP senders addressed to the router not cached because the interface's cache held arp.max_entries.",
        one(c.arp_cache_full),
    );
    f.counter(
        "spimux_offload_frames_total",
        "Frames forwarded with offload work left pending: a partial TCP/UDP checksum, or a GSO super-frame (also partial).",
        vec![
            (vec![("kind", "partial_checksum")], c.offload_partial as f64),
            (vec![("kind", "gso")], c.offload_gso as f64),
        ],
    );
    f.counter(
        "spimux_gso_segments_total",
        "Wire packets the forwarded GSO super-frames stand for (a super-frame counts once in spimux_packets_total).",
        one(c.gso_segments),
    );
    let cap = &shared.capture;
    let by_writer = cap.writer_counts();
    f.counter(
        "spimux_capture_frames_total",
        "Dropped frames offered to the drop capture (capture.drops_file), by result.",
        CaptureResult::ALL
            .iter()
            .map(|r| {
                let i = *r as usize;
                (
                    vec![("result", r.label())],
                    (c.capture[i] + by_writer[i]) as f64,
                )
            })
            .collect(),
    );
    f.gauge(
        "spimux_capture_active",
        "1 while dropped frames are being captured, 0 when off or stopped (file full, write error).",
        one(u64::from(cap.is_active())),
    );
    f.gauge(
        "spimux_capture_file_bytes",
        "Size of the drop capture file.",
        one(cap.file_bytes()),
    );
    let fwd = &shared.fwd;
    let t = &fwd.nat.table;
    f.gauge(
        "spimux_nat_sessions",
        "Live NAT sessions.",
        one(t.session_count() as u64),
    );
    let by = t.mapping_count_by_proto();
    f.gauge(
        "spimux_nat_mappings",
        "Live NAT mappings, by protocol.",
        per_proto([by[0] as u64, by[1] as u64, by[2] as u64]),
    );
    f.gauge(
        "spimux_nat_inside_hosts",
        "Inside hosts with NAT state.",
        one(t.host_count() as u64),
    );
    f.gauge(
        "spimux_esp_bindings",
        "Inbound SPI bindings.",
        one(fwd.nat.esp.binding_count() as u64),
    );
    f.gauge(
        "spimux_esp_responder_bindings_max",
        "Most inbound SPI bindings held with one responder.",
        one(fwd.nat.esp.max_responder_bindings() as u64),
    );
    f.gauge(
        "spimux_nat_host_ports_max",
        "Most external ports one inside host holds for one protocol.",
        one(t.max_host_ports() as u64),
    );
    f.gauge(
        "spimux_esp_recorded_spis",
        "Recorded outbound SPIs.",
        one(fwd.nat.esp.recorded_count() as u64),
    );
    f.gauge(
        "spimux_arp_cache_entries",
        "ARP cache entries, by interface.",
        per_side([Side::Inside, Side::Outside].map(|s| fwd.arp.len_on(s) as u64)),
    );
    f.gauge(
        "spimux_arp_pending_hops",
        "Next hops waiting for ARP resolution, by interface.",
        per_side([Side::Inside, Side::Outside].map(|s| fwd.arp.pending_on(s) as u64)),
    );
    f.gauge(
        "spimux_workers",
        "Worker count (each has one receive thread per interface).",
        one(shared.workers as u64),
    );
    f.counter(
        "spimux_config_reloads_total",
        crate::daemon::reload::HELP,
        shared.reloads.samples(),
    );
    limits(shared, &mut f);
    build_info(&mut f, ("backend", shared.backend));
    f.encode()
}

/// The configured caps next to the gauges they bound, so alerts and
/// dashboards divide one by the other instead of copying the config.
fn limits(shared: &Shared, f: &mut Families) {
    let nat = &shared.fwd.nat;
    let (n, e) = (nat.table.config(), nat.esp.config());
    let l = &n.limits;
    for (name, help, v) in [
        (
            "spimux_nat_sessions_limit",
            "Configured cap of spimux_nat_sessions (nat.limits.max_sessions).",
            l.max_sessions,
        ),
        (
            "spimux_nat_inside_hosts_limit",
            "Configured cap of spimux_nat_inside_hosts (nat.limits.max_hosts).",
            l.max_hosts,
        ),
        (
            "spimux_nat_host_ports_limit",
            "Configured cap of spimux_nat_host_ports_max (nat.limits.max_ports_per_host).",
            l.max_ports_per_host,
        ),
        (
            "spimux_esp_bindings_limit",
            "Configured cap of spimux_esp_bindings (esp.max_bindings).",
            e.max_bindings,
        ),
        (
            "spimux_esp_responder_bindings_limit",
            "Configured cap of spimux_esp_responder_bindings_max (esp.max_bindings_per_responder).",
            e.max_bindings_per_responder,
        ),
        (
            "spimux_esp_recorded_spis_limit",
            "Configured cap of spimux_esp_recorded_spis (esp.max_spis).",
            e.max_spis,
        ),
    ] {
        f.gauge(name, help, one(u64::from(v)));
    }
    // Every external address has its own nat.port_min..=nat.port_max per protocol.
    let range = u64::from(n.port_max.saturating_sub(n.port_min)).saturating_add(1);
    let ports = range.saturating_mul(nat.table.external().len() as u64);
    f.gauge(
        "spimux_nat_ports_limit",
        "External ports (ICMP identifiers) per protocol, the cap of spimux_nat_mappings: nat.port_min..=nat.port_max on each external address.",
        per_proto([ports; 3]),
    );
}
