//! End-to-end IKEv2: unmodified strongSwan 5.9 initiators (charon per
//! namespace, kernel-libipsec) on both inside hosts, through the spimux
//! router, to `spimux responder` keyed by IKE. Needs root; never skipped in CI.

mod support;

use support::endpoint::*;
use support::strongswan::*;
use support::*;

const GW_INNER: &str = "10.99.0.1";
/// (host, outer address, inner address)
const HOSTS: [(&str, &str, &str); 2] = [
    ("h1", "10.6.1.2", "10.98.0.2"),
    ("h2", "10.6.1.3", "10.98.0.3"),
];

/// Uploads `mb` MB of pseudo-random data from `host` (bound to its inner
/// address) over TCP to the gateway's inner address; asserts it arrives bit-exact.
fn upload(bed: &mut Bed, host: &str, inner: &str, port: u16, mb: usize) {
    let u = bed.upload_sink(host, &test_bytes(mb << 20, u32::from(port)), GW_INNER, port);
    bed.socat_upload(host, &u, GW_INNER, port, Some(inner));
    bed.assert_uploaded(
        &u,
        &format!("{host}: {mb} MB upload through the IKE-keyed tunnel arrived bit-exact"),
    );
}

#[test]
fn strongswan_initiators_through_the_router_to_the_ike_responder() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    // kernel-libipsec does UDP encapsulation only: answer its NAT detection.
    let cfg = edited(&bed, "responder.toml", |t| {
        for i in 0..2 {
            peer_ike(t, i).insert("nat_detection".into(), toml::Value::String("auto".into()));
        }
    });
    bed.start_endpoint("responder", "srv", "responder", &cfg, 9781);
    for (h, addr, inner) in HOSTS {
        // kernel-libipsec routes the protected network into its TUN with this source.
        bed.ok(
            h,
            &["ip", "addr", "add", &format!("{inner}/32"), "dev", "lo"],
        );
        let text = render(
            "initiator-psk.conf.in",
            &[
                format!("HOST_ADDR={addr}"),
                format!("INNER={inner}/32"),
                format!("ID={h}"),
            ],
        );
        // h2 offers only what many clients offer by default: AES-CBC + HMAC-SHA2-256 for ESP.
        let text = match h {
            "h2" => text.replace(
                "esp_proposals = aes128gcm16",
                "esp_proposals = aes128-sha256",
            ),
            _ => text,
        };
        let conf = SwanDir::new(&bed, h).write_conf(&text);
        start_charon(&mut bed, h, h, &conf, &["spimux"]);
    }
    for (h, _, inner) in HOSTS {
        bed.ok(
            h,
            &[
                "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", inner, GW_INNER,
            ],
        );
    }
    for (i, (h, _, inner)) in HOSTS.iter().enumerate() {
        upload(&mut bed, h, inner, 7001 + i as u16, 4);
    }
    let m = bed.endpoint_metrics("responder");
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_in(&m, "spimux_ike_spis_total{how=\"derived\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_in(
            &m,
            "spimux_ike_exchanges_total{exchange=\"ike_auth\",role=\"responder\",result=\"ok\"}"
        ),
        2.0
    );
    for (h, _, _) in HOSTS {
        let (local, remote, encap) = sa_info(&m, h);
        // kernel-libipsec always fakes a NAT, so ESP is in UDP here.
        assert_eq!(encap, "udp", "{h}");
        // The responder's SPI carries the SPI-hash tag of the initiator's.
        let verdict = assert_derived(&m, h);
        println!("{h}: responder SPI {local} derived from strongSwan's {remote}, ESP in {encap}: {verdict}");
    }
    let log = bed.log("responder");
    assert_eq!(log.matches("CHILD_SA installed").count(), 2, "{log}");
}

#[test]
fn spimux_clients_keep_plain_esp_through_rekeys_from_both_sides() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let int = |v: i64| toml::Value::Integer(v);
    // config/responder.toml answers no NAT detection for h1 and h2: the
    // clients keep plain ESP through the spimux router.
    let r = edited(&bed, "responder.toml", |t| {
        // The gateway rekeys h2's CHILD_SAs (h2 is a spimux client: it derives when answering).
        let h2 = peer_ike(t, 1);
        h2.insert("child_rekey".into(), toml::Value::String("both".into()));
        h2.insert("rekey_secs".into(), int(3));
        h2.insert("jitter_secs".into(), int(1));
    });
    bed.start_endpoint("responder", "srv", "responder", &r, 9781);
    // h1 rekeys its CHILD_SAs and its IKE SA itself; h2 leaves rekeys to the gateway.
    let c1 = edited(&bed, "client-h1.toml", |t| {
        let ike = peer_ike(t, 0);
        ike.insert("rekey_secs".into(), int(3));
        ike.insert("jitter_secs".into(), int(1));
        ike.insert("ike_rekey_secs".into(), int(5));
    });
    let c2 = edited(&bed, "client-h2.toml", |t| {
        peer_ike(t, 0).insert("rekey_secs".into(), int(0));
    });
    bed.start_endpoint("h1", "h1", "client", &c1, 9782);
    bed.start_endpoint("h2", "h2", "client", &c2, 9782);
    for (h, _, _) in HOSTS {
        bed.wait_endpoint_metric(h, "spimux_ike_child_sas{state=\"installed\"}", 1.0);
    }
    for (h, _, _) in HOSTS {
        bed.ok(h, &["ping", "-c", "3", "-i", "0.2", "-W", "2", GW_INNER]);
    }
    // Slow uploads from both hosts at once, long enough for several rekeys.
    let secs = 9;
    let uploads: Vec<Upload> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, (h, _, _))| {
            let data = test_bytes(6 << 20, 0x2545_F491 ^ i as u32);
            bed.upload_sink(&format!("slow-{h}"), &data, GW_INNER, 7101 + i as u16)
        })
        .collect();
    let bed_ref: &Bed = &bed;
    std::thread::scope(|s| {
        for (i, ((h, _, inner), u)) in HOSTS.iter().zip(&uploads).enumerate() {
            s.spawn(move || {
                bed_ref.ok(
                    h,
                    &[
                        PY,
                        &format!("{ROOT}/testbed/slow_upload.py"),
                        u.file.to_str().unwrap(),
                        GW_INNER,
                        &(7101 + i).to_string(),
                        inner,
                        &secs.to_string(),
                    ],
                );
            });
        }
    });
    for ((h, _, _), u) in HOSTS.iter().zip(&uploads) {
        bed.assert_uploaded(
            u,
            &format!("{h}: 6 MB over {secs} s through rekeys arrived bit-exact"),
        );
    }
    let m = bed.endpoint_metrics("responder");
    let rekeys = |kind: &str, by: &str| {
        metric_in(
            &m,
            &format!("spimux_ike_rekeys_total{{kind=\"{kind}\",by=\"{by}\"}}"),
        )
    };
    let (child_peer, child_local, ike_peer) = (
        rekeys("child", "peer"),
        rekeys("child", "local"),
        rekeys("ike", "peer"),
    );
    println!("responder: CHILD_SA rekeys started by clients {child_peer}, by the gateway {child_local}; IKE SA rekeys by clients {ike_peer}");
    assert!(child_peer >= 1.0, "client-started CHILD_SA rekey:\n{m}");
    assert!(child_local >= 1.0, "gateway-started CHILD_SA rekey:\n{m}");
    assert!(ike_peer >= 1.0, "IKE SA rekey:\n{m}");
    let h2 = bed.endpoint_metrics("h2");
    assert!(
        metric_in(&h2, "spimux_ike_spis_total{how=\"derived\"}") >= 1.0,
        "h2 derived when answering:\n{h2}"
    );
    for (h, _, _) in HOSTS {
        let (_, _, encap) = sa_info(&m, h);
        assert_eq!(encap, "esp", "{h}: plain ESP all along");
    }
    let rm = bed.metrics();
    let matches = |rel: &str| {
        metric_in(
            &rm,
            &format!("spimux_esp_matches_total{{relation=\"{rel}\"}}"),
        )
    };
    println!(
        "router: ESP matches responder_derived {}, inside_derived {}, collisions {}, unmatched {}",
        matches("responder_derived"),
        matches("inside_derived"),
        metric_in(&rm, "spimux_esp_collisions_total"),
        metric_in(&rm, "spimux_esp_unmatched_total")
    );
    assert!(matches("responder_derived") >= 3.0, "{rm}");
    assert!(matches("inside_derived") >= 1.0, "{rm}");
}
