//! The endpoint's Prometheus exposition.

use super::runtime::Shared;
use super::tunnel_status::TunnelStatus;
use crate::daemon::metrics::{build_info, one, Families, Sample};
use crate::esp::tunnel::TunnelDrop;

/// Renders the whole exposition text.
pub fn render(shared: &Shared) -> String {
    let c = shared.stats.total();
    let mut f = Families::default();
    f.counter(
        "spimux_send_errors_total",
        "Datagrams the kernel refused in batched sends, by reason; the rest of the batch still went \
         (full: buffer full, the rest of that batch counted too).",
        crate::io::sys::SendFailure::ALL
            .iter()
            .zip(c.send_errors.0)
            .map(|(k, n)| (vec![("reason", k.label())], n as f64))
            .collect(),
    );
    // Each tunnel's locks once: copy what is needed, then format.
    let st: Vec<TunnelStatus> = shared.core.tunnels.iter().map(|t| t.status()).collect();
    let per = |v: fn(&TunnelStatus) -> u64| -> Vec<Sample<'_>> {
        st.iter()
            .map(|t| (vec![("peer", t.peer.as_str())], v(t) as f64))
            .collect()
    };
    f.counter(
        "spimux_tunnel_tx_packets_total",
        "Inner packets sealed and sent, per peer.",
        per(|t| t.tx_packets),
    );
    f.counter(
        "spimux_tunnel_tx_bytes_total",
        "Inner bytes sealed and sent, per peer.",
        per(|t| t.tx_bytes),
    );
    f.counter(
        "spimux_tunnel_rx_packets_total",
        "ESP packets authenticated and delivered, per peer.",
        per(|t| t.rx_packets),
    );
    f.counter(
        "spimux_tunnel_rx_bytes_total",
        "Inner bytes delivered, per peer.",
        per(|t| t.rx_bytes),
    );
    f.counter(
        "spimux_tunnel_auth_failures_total",
        "ESP packets whose ICV did not verify, per peer.",
        per(|t| t.auth_failures),
    );
    f.counter(
        "spimux_tunnel_replay_drops_total",
        "ESP packets refused by the anti-replay window, per peer.",
        per(|t| t.replay_drops),
    );
    f.counter(
        "spimux_tunnel_unexpected_source_total",
        "Authenticated packets from an address other than the peer's (address not moved).",
        per(|t| t.unexpected_source),
    );
    f.gauge(
        "spimux_sa_tx_sequence",
        "Last sequence number sent, per peer.",
        per(TunnelStatus::tx_seq),
    );
    f.gauge(
        "spimux_sa_rx_sequence",
        "Highest sequence number received, per peer.",
        per(TunnelStatus::rx_seq),
    );
    f.gauge(
        "spimux_sa_peer_known",
        "1 when the peer's outer address is known (configured or learned).",
        per(|t| u64::from(t.remote.is_some())),
    );
    let info: Vec<[String; 2]> = st
        .iter()
        .map(|t| {
            [
                t.remote.map_or(String::new(), |a| a.to_string()),
                t.derived.to_string(),
            ]
        })
        .collect();
    f.gauge(
        "spimux_sa_info",
        "SA facts per peer: SPIs, encapsulation in use, outer address, derived SPI.",
        st.iter()
            .zip(&info)
            .map(|(t, i)| {
                (
                    vec![
                        ("peer", t.peer.as_str()),
                        ("local_spi", t.local_spi.as_str()),
                        ("remote_spi", t.remote_spi.as_str()),
                        ("encap", t.encap),
                        ("remote", i[0].as_str()),
                        ("derived", i[1].as_str()),
                    ],
                    1.0,
                )
            })
            .collect(),
    );
    f.counter(
        "spimux_tunnel_drops_total",
        "Packets dropped by the endpoint, by reason.",
        TunnelDrop::ALL
            .iter()
            .map(|d| (vec![("reason", d.label())], c.drops[d.index()] as f64))
            .collect(),
    );
    f.counter(
        "spimux_tun_rx_packets_total",
        "Packets read from the TUN device.",
        one(c.tun_rx),
    );
    f.counter(
        "spimux_tun_tx_packets_total",
        "Packets written to the TUN device.",
        one(c.tun_tx),
    );
    f.counter(
        "spimux_outer_rx_packets_total",
        "ESP and UDP/4500 datagrams received.",
        one(c.outer_rx),
    );
    f.counter(
        "spimux_outer_tx_packets_total",
        "ESP packets sent.",
        one(c.outer_tx),
    );
    f.counter(
        "spimux_keepalives_sent_total",
        "NAT keepalives sent.",
        one(c.keepalives_sent),
    );
    f.counter(
        "spimux_keepalives_received_total",
        "NAT keepalives received.",
        one(c.keepalives_received),
    );
    f.counter(
        "spimux_udp_trains_total",
        "Trains of ESP-in-UDP datagrams handled as one: sent as one UDP GSO message (tx), received coalesced by UDP_GRO (rx).",
        vec![
            (vec![("direction", "tx")], c.gso_trains_tx as f64),
            (vec![("direction", "rx")], c.gro_trains_rx as f64),
        ],
    );
    let s = shared.core.spi_stats;
    f.counter(
        "spimux_spi_derivations_total",
        "Inbound SPIs settled at start: derived from the peer's SPI, configured, or refused.",
        vec![
            (vec![("result", "derived")], s.derived as f64),
            (vec![("result", "configured")], s.reserved as f64),
            (vec![("result", "refused")], s.refused as f64),
        ],
    );
    f.counter(
        "spimux_spi_redraws_total",
        "Random SPI bytes redrawn because the candidate was reserved or live.",
        one(s.redraws),
    );
    mobility(shared, &st, &mut f);
    ike(shared, &mut f);
    f.counter(
        "spimux_config_reloads_total",
        crate::daemon::reload::HELP,
        shared.reloads.samples(),
    );
    build_info(&mut f, ("role", shared.core.role));
    f.encode()
}

fn ike(shared: &Shared, f: &mut Families) {
    use crate::ike::sa::{ChildState, IkeState};
    use crate::ike::stats::{
        error_sent_label, exchange_label, IkeDrop, Outcome, PeerAuth, EXCHANGES,
    };
    let Some(k) = shared.keying.as_ref() else {
        return;
    };
    let s = k.snapshot.lock().clone();
    let st = &s.stats;
    f.gauge(
        "spimux_ike_sas",
        "IKE SAs by state.",
        IkeState::ALL
            .iter()
            .zip(s.ike_sas.iter())
            .map(|(x, n)| (vec![("state", x.label())], *n as f64))
            .collect(),
    );
    f.gauge(
        "spimux_ike_child_sas",
        "CHILD_SAs by state.",
        ChildState::ALL
            .iter()
            .zip(s.child_sas.iter())
            .map(|(x, n)| (vec![("state", x.label())], *n as f64))
            .collect(),
    );
    f.gauge(
        "spimux_ike_half_open_sas",
        "IKE SAs answered in IKE_SA_INIT and waiting for IKE_AUTH.",
        one(s.half_open),
    );
    let mut ex = Vec::new();
    for (i, e) in EXCHANGES.iter().enumerate() {
        for (j, o) in Outcome::ALL.iter().enumerate() {
            for (role, t) in [("initiator", &st.initiated), ("responder", &st.answered)] {
                let n = t.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
                ex.push((
                    vec![
                        ("exchange", exchange_label(*e)),
                        ("role", role),
                        ("result", o.label()),
                    ],
                    n as f64,
                ));
            }
        }
    }
    f.counter(
        "spimux_ike_exchanges_total",
        "IKE exchanges by type, our role and result.",
        ex,
    );
    f.counter(
        "spimux_ike_drops_total",
        "IKE datagrams dropped without an answer, by reason.",
        IkeDrop::ALL
            .iter()
            .zip(st.drops.iter())
            .map(|(d, n)| (vec![("reason", d.label())], *n as f64))
            .collect(),
    );
    f.counter(
        "spimux_ike_errors_sent_total",
        "Requests answered with an error notification, by its type (RFC 7296 name).",
        st.errors_sent
            .iter()
            .enumerate()
            .map(|(i, n)| (vec![("notify", error_sent_label(i))], *n as f64))
            .collect(),
    );
    f.counter(
        "spimux_ike_rekeys_total",
        "Completed rekeys by kind and by the side that started them.",
        vec![
            (
                vec![("kind", "child"), ("by", "local")],
                st.child_rekeys[0] as f64,
            ),
            (
                vec![("kind", "child"), ("by", "peer")],
                st.child_rekeys[1] as f64,
            ),
            (
                vec![("kind", "ike"), ("by", "local")],
                st.ike_rekeys[0] as f64,
            ),
            (
                vec![("kind", "ike"), ("by", "peer")],
                st.ike_rekeys[1] as f64,
            ),
        ],
    );
    f.counter(
        "spimux_ike_spis_total",
        "CHILD_SA inbound SPIs: derived from the peer's (we answered), random (we proposed), refused.",
        vec![
            (vec![("how", "derived")], st.spis_derived as f64),
            (vec![("how", "random")], st.spis_random as f64),
            (vec![("how", "refused")], st.spi_failures as f64),
        ],
    );
    f.counter(
        "spimux_ike_retransmits_total",
        "IKE requests retransmitted.",
        one(st.retransmits),
    );
    f.counter(
        "spimux_ike_cached_responses_total",
        "Retransmitted requests answered from the response cache.",
        one(st.cached_responses),
    );
    f.counter(
        "spimux_ike_auth_failures_total",
        "IKE_AUTH authentication failures (ours to verify or reported by the peer).",
        one(st.auth_failures),
    );
    f.counter(
        "spimux_ike_peer_auths_total",
        "Peers authenticated in IKE_AUTH, by method: pre-shared key, or the key type of the certificate that signed.",
        PeerAuth::ALL
            .iter()
            .zip(st.peer_auths)
            .map(|(m, n)| (vec![("method", m.label())], n as f64))
            .collect(),
    );
    f.counter(
        "spimux_ike_cookies_sent_total",
        "COOKIE notifications sent (half-open threshold reached).",
        one(st.cookies_sent),
    );
    f.counter(
        "spimux_ike_invalid_ke_sent_total",
        "INVALID_KE_PAYLOAD answers steering an initiator to our group.",
        one(st.invalid_ke_sent),
    );
    f.counter(
        "spimux_ike_dead_peers_total",
        "IKE SAs given up: no answer to a request.",
        one(st.dead_peers),
    );
    f.counter(
        "spimux_ike_half_open_expired_total",
        "Half-open IKE SAs that expired without IKE_AUTH.",
        one(st.half_open_expired),
    );
    f.counter(
        "spimux_ike_limit_total",
        "IKE limits that bit: CHILD_SA requests refused (child_sas), IKE SAs replaced for a peer over its cap (ike_sas_per_peer).",
        vec![
            (vec![("limit", "child_sas")], st.child_limit as f64),
            (vec![("limit", "ike_sas_per_peer")], st.peer_limit as f64),
        ],
    );
    f.counter(
        "spimux_ike_queue_full_total",
        "IKE datagrams dropped before the IKE thread because its queue was full.",
        one(k.queue_full.load(std::sync::atomic::Ordering::Relaxed)),
    );
}

fn mobility(shared: &Shared, st: &[TunnelStatus], f: &mut Families) {
    use super::tunnel::Encap;
    use crate::mobility::gateway::Outcome;
    use crate::mobility::NatKind;
    let m = shared.core.mobility.stats.lock().clone();
    let mut encaps = Vec::new();
    for t in st {
        for e in [Encap::Plain, Encap::Udp] {
            let on = t.encap == e.label();
            encaps.push((
                vec![("peer", t.peer.as_str()), ("encap", e.label())],
                f64::from(u8::from(on)),
            ));
        }
    }
    f.gauge(
        "spimux_tunnel_encapsulation",
        "1 for the encapsulation each tunnel sends with now (esp = plain ESP, udp = RFC 3948).",
        encaps,
    );
    let mut results: Vec<Sample> = Outcome::ALL
        .iter()
        .zip(m.outcomes.iter())
        .map(|(o, n)| (vec![("result", o.label())], *n as f64))
        .collect();
    if shared.core.role == "client" {
        results = vec![
            (vec![("result", "accepted")], m.accepted as f64),
            (vec![("result", "refused")], m.refused as f64),
        ];
    }
    f.counter(
        "spimux_mobility_registrations_total",
        "Registrations by result (gateway: each request checked; client: each registration).",
        results,
    );
    f.counter(
        "spimux_mobility_nat_detected_total",
        "Accepted registrations by the translation seen on the path.",
        NatKind::ALL
            .iter()
            .zip(m.nat.iter())
            .map(|(k, n)| (vec![("kind", k.label())], *n as f64))
            .collect(),
    );
    f.counter(
        "spimux_mobility_messages_total",
        "Registration messages by type and direction.",
        vec![
            (
                vec![("type", "rreq"), ("direction", "tx")],
                m.rreq_tx as f64,
            ),
            (
                vec![("type", "rreq"), ("direction", "rx")],
                m.rreq_rx as f64,
            ),
            (
                vec![("type", "rrep"), ("direction", "tx")],
                m.rrep_tx as f64,
            ),
            (
                vec![("type", "rrep"), ("direction", "rx")],
                m.rrep_rx as f64,
            ),
        ],
    );
    let unproven = |v: fn(&super::tunnel::TxState) -> u64| {
        shared
            .core
            .tunnels
            .iter()
            .map(|t| v(&t.tx.lock()))
            .fold(0u64, u64::saturating_add) as f64
    };
    f.counter(
        "spimux_mobility_unproven_total",
        "Gateway: registrations that moved a peer to an address not proven yet (moved), \
         addresses proven by an authenticated packet from them (proven), packets sent to an \
         unproven address within its budget (sent) and not sent once it was spent (capped).",
        vec![
            (vec![("event", "moved")], m.unproven_moves as f64),
            (vec![("event", "proven")], m.proofs as f64),
            (vec![("event", "sent")], unproven(|t| t.unproven_sent)),
            (vec![("event", "capped")], unproven(|t| t.unproven_capped)),
        ],
    );
    f.counter(
        "spimux_mobility_proofs_sent_total",
        "Client: ESP dummy packets sent after an accepted registration to prove the new address.",
        one(m.proofs_tx),
    );
    f.counter(
        "spimux_mobility_dropped_total",
        "Registration messages dropped by reason (client: a reply not from the gateway's inner \
         address and port).",
        vec![(
            vec![("reason", "reply_source")],
            m.reply_wrong_source as f64,
        )],
    );
    f.counter(
        "spimux_mobility_fallbacks_total",
        "Plain ESP offered on an untranslated path but filtered: stayed on UDP.",
        one(m.fallbacks),
    );
    f.counter(
        "spimux_mobility_send_failures_total",
        "Registration messages the kernel refused to send.",
        one(m.send_failures),
    );
    f.gauge(
        "spimux_mobility_last_path_change_timestamp_seconds",
        "Client: when the last change of the route to the gateway was seen (Unix time).",
        vec![(vec![], m.last_change_unix)],
    );
    f.gauge(
        "spimux_mobility_last_registration_timestamp_seconds",
        "Client: when the last registration was accepted (Unix time).",
        vec![(vec![], m.last_registered_unix)],
    );
    f.histogram(
        "spimux_mobility_handover_seconds",
        "Client: route change seen to accepted registration reply, per move.",
        &super::registration::HANDOVER_BUCKETS,
        &m.handover_buckets,
        m.handover_over,
        m.handover_sum,
    );
}
