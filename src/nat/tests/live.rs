//! Changing the configuration of a running NAT (reload) and the operator
//! listings (`show translations|hosts|esp`).

use super::{esp_in, esp_out, nat_with, H1, H2, L, R, SEC};
use crate::nat::config::{EspConfig, Filtering, NatConfig, Relations};
use crate::nat::events::{NatDrop, NatEvents};
use crate::nat::table::listing::Filter;
use crate::nat::Nat;
use crate::spi::Layout;
use crate::wire::build;
use crate::wire::tcp::flags;
use std::net::Ipv4Addr;

fn udp_out(n: &Nat, h: Ipv4Addr, port: u16, ev: &mut NatEvents) -> Result<(), NatDrop> {
    let mut p = build::udp(h, port, R, 53, b"q");
    n.outbound(&mut p, 0, ev)
}

#[test]
fn a_lowered_host_limit_keeps_existing_sessions_and_refuses_new_ones() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_sessions_per_host = 8;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    for port in 0..6 {
        udp_out(&n, H1, 5000 + port, &mut ev).unwrap();
    }
    cfg.limits.max_sessions_per_host = 4;
    n.reconfigure(cfg, EspConfig::default()).unwrap();
    assert_eq!(n.table.config().limits.max_sessions_per_host, 4);
    // The six sessions stay and keep translating…
    assert_eq!(n.table.session_count(), 6);
    for port in 0..6 {
        udp_out(&n, H1, 5000 + port, &mut ev).unwrap();
    }
    // …but a new flow is over the new limit; another host is not.
    assert_eq!(udp_out(&n, H1, 6000, &mut ev), Err(NatDrop::HostLimit));
    udp_out(&n, H2, 6000, &mut ev).unwrap();
    // Raised again, H1 gets new flows at once.
    cfg.limits.max_sessions_per_host = 16;
    n.reconfigure(cfg, EspConfig::default()).unwrap();
    udp_out(&n, H1, 6000, &mut ev).unwrap();
    n.check_invariants().unwrap();
}

#[test]
fn a_shorter_timeout_applies_from_the_next_packet() {
    let mut cfg = NatConfig::default();
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    udp_out(&n, H1, 5000, &mut ev).unwrap();
    cfg.timeouts.udp = 120;
    n.reconfigure(cfg, EspConfig::default()).unwrap();
    // Refreshed under the new timeout: gone after 120 s, not 300 s.
    udp_out(&n, H1, 5000, &mut ev).unwrap();
    n.expire(121 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0);
}

#[test]
fn restart_only_fields_are_refused_by_name_and_nothing_changes() {
    let cfg = NatConfig::default();
    let n = nat_with(cfg, EspConfig::default());
    let mut limits_too = cfg;
    limits_too.limits.max_sessions = 10;
    let cases: [(&str, NatConfig); 3] = [
        (
            "nat.filtering",
            NatConfig {
                filtering: Filtering::EndpointIndependent,
                ..limits_too
            },
        ),
        (
            "nat.port_min",
            NatConfig {
                port_min: 2048,
                ..limits_too
            },
        ),
        (
            "nat.preserve_ike_port",
            NatConfig {
                preserve_ike_port: !cfg.preserve_ike_port,
                ..limits_too
            },
        ),
    ];
    for (field, bad) in cases {
        let e = n.reconfigure(bad, EspConfig::default()).unwrap_err();
        assert_eq!(e.field, field);
        assert_eq!(n.table.config(), cfg, "{field}: nothing applied");
    }
    let esp = EspConfig {
        layout: Layout {
            tag_len: 3,
            ..Layout::default()
        },
        idle_timeout: 30,
        ..EspConfig::default()
    };
    let e = n.reconfigure(limits_too, esp).unwrap_err();
    assert_eq!(e.field, "esp.layout");
    assert_eq!(
        n.table.config(),
        cfg,
        "a refused ESP change applies no NAT change"
    );
    assert_eq!(n.esp.config(), EspConfig::default());
    // Invalid values are refused by the validator, naming the field.
    let mut invalid = cfg;
    invalid.timeouts.udp = 10;
    assert_eq!(
        n.reconfigure(invalid, EspConfig::default())
            .unwrap_err()
            .field,
        "nat.timeouts.udp"
    );
}

#[test]
fn esp_relations_and_caps_change_live() {
    let esp = EspConfig {
        relations: Relations::InsideDerives,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), esp);
    let mut ev = NatEvents::default();
    let s_o = 0xB728_5662u32;
    esp_out(&n, H1, L.derive_with(s_o, 0x4444_0000), 0, &mut ev).unwrap();
    // Responder-derived SPIs are not looked up under inside-derives…
    assert!(esp_in(&n, s_o, 0, &mut ev).is_err());
    let both = EspConfig {
        relations: Relations::Both,
        ..EspConfig::default()
    };
    n.reconfigure(NatConfig::default(), both).unwrap();
    // …and are after the change (a later SPI: the miss cache keeps the first).
    let s_o2 = 0x0BAD_F00Du32;
    esp_out(&n, H2, L.derive_with(s_o2, 0x4444_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o2, 0, &mut ev), Ok(H2));
    let capped = EspConfig {
        max_spis: 2,
        ..both
    };
    n.reconfigure(NatConfig::default(), capped).unwrap();
    assert_eq!(
        esp_out(&n, H1, 0x0100_0000, 0, &mut ev),
        Err(NatDrop::EspSpisFull)
    );
}

#[test]
fn listings_show_what_traffic_created_filtered() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    udp_out(&n, H1, 5000, &mut ev).unwrap();
    udp_out(&n, H2, 5001, &mut ev).unwrap();
    let mut syn = build::tcp(H1, 40000, R, 443, flags::SYN, b"");
    n.outbound(&mut syn, 0, &mut ev).unwrap();
    let all = n.table.translations(&Filter::default(), 10 * SEC);
    assert_eq!(all.len(), 3);
    let tcp = all.iter().find(|t| t.proto == "tcp").unwrap();
    assert_eq!((tcp.inside.ip, tcp.inside.port), (H1, 40000));
    assert_eq!((tcp.remote.ip, tcp.remote.port), (R, 443));
    assert_eq!(tcp.state, Some("syn_sent"));
    assert_eq!(
        tcp.expires_in,
        NatConfig::default().timeouts.tcp_transitory - 10
    );
    let h2 = n.table.translations(
        &Filter {
            host: Some(H2),
            ..Filter::default()
        },
        0,
    );
    assert_eq!(h2.len(), 1);
    assert_eq!(
        (h2[0].proto, h2[0].inside.port, h2[0].state),
        ("udp", 5001, None)
    );
    // The external endpoint is what the remote sees.
    let ext = n
        .table
        .lookup_outbound(17, crate::nat::Endpoint { ip: H2, port: 5001 })
        .unwrap();
    assert_eq!(h2[0].external, ext);
    let udp_only = Filter {
        proto: Some(17),
        ..Filter::default()
    };
    assert_eq!(n.table.translations(&udp_only, 0).len(), 2);
    let hosts = n.table.host_usage(&Filter::default(), 0);
    assert_eq!(hosts.len(), 2);
    assert_eq!((hosts[0].host, hosts[0].sessions), (H1, 2));
    assert_eq!((hosts[0].ports.tcp, hosts[0].ports.udp), (1, 1));
}

#[test]
fn esp_listing_shows_recorded_spis_and_their_pairing() {
    let n = nat_with(NatConfig::default(), EspConfig::default());
    let mut ev = NatEvents::default();
    let s_o = 0xB728_5662u32;
    let s_r = L.derive_with(s_o, 0x4444_0000);
    esp_out(&n, H1, s_r, 0, &mut ev).unwrap();
    esp_out(&n, H2, 0x0100_0000, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
    let (spis, bindings) = n.esp.listing(&Filter::default(), 0);
    assert_eq!(spis.len(), 2);
    assert_eq!(spis[0].inside, H1);
    assert_eq!(spis[0].spi, format!("{s_r:#010x}"));
    assert_eq!(spis[0].paired_with, Some(format!("{s_o:#010x}")));
    assert_eq!(spis[1].paired_with, None, "H2's SPI is still unpaired");
    assert_eq!(bindings.len(), 1);
    assert_eq!((bindings[0].inside, bindings[0].responder), (H1, R));
    assert_eq!(bindings[0].outbound_spi, format!("{s_r:#010x}"));
    let only_h2 = Filter {
        host: Some(H2),
        ..Filter::default()
    };
    let (spis, bindings) = n.esp.listing(&only_h2, 0);
    assert_eq!((spis.len(), bindings.len()), (1, 0));
}

#[test]
fn reloadable_settings_round_trip_through_their_words() {
    use crate::live::Words;
    let t = crate::nat::config::Timeouts {
        udp: 121,
        tcp_established: 7441,
        tcp_transitory: 241,
        icmp: 61,
    };
    assert_eq!(crate::nat::config::Timeouts::from_words(t.to_words()), t);
    let l = crate::nat::config::Limits {
        max_sessions: 1,
        max_sessions_per_host: 2,
        new_sessions_per_sec_per_host: 3,
        new_sessions_burst: 4,
        max_esp_spis_per_host: 5,
        max_ports_per_host: 6,
        max_hosts: 7,
    };
    assert_eq!(crate::nat::config::Limits::from_words(l.to_words()), l);
    for relations in [
        Relations::ResponderDerives,
        Relations::InsideDerives,
        Relations::Both,
    ] {
        let e = EspConfig {
            layout: Layout {
                tag_len: 3,
                spi_offset: 1,
                digest_offset: 9,
            },
            relations,
            single_pending_fallback: true,
            idle_timeout: 11,
            max_spis: 12,
            max_bindings: 13,
            max_bindings_per_responder: 14,
            resolve_per_sec_per_responder: 15,
            resolve_burst: 16,
        };
        assert_eq!(EspConfig::from_words(e.to_words()), e);
    }
}
