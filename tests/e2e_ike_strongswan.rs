//! End-to-end IKEv2 interop with an unmodified strongSwan 5.9.8 (charon per
//! namespace, kernel-libipsec), beyond the PSK initiators of `e2e_ike.rs`:
//! strongSwan initiators authenticating by certificate (ECDSA and RSA,
//! RFC 7427) at `spimux responder`, one from an unknown CA refused; and
//! `spimux client`s initiating to a strongSwan responder (PSK and
//! certificate), through strongSwan's rekeys. Needs root; never skipped in CI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::endpoint::*;
use support::strongswan::*;
use support::*;

const GW_INNER: &str = "10.99.0.1";
/// (host, outer address, inner address, PKI): h1 proves itself with ECDSA P-256, h2 with RSA.
const HOSTS: [(&str, &str, &str, &str); 2] = [
    ("h1", "10.6.1.2", "10.98.0.2", "ecdsa"),
    ("h2", "10.6.1.3", "10.98.0.3", "rsa"),
];
/// strongSwan's name for the RFC 7427 signature a key of each PKI makes.
fn sig_name(kind: &str) -> &'static str {
    match kind {
        "ecdsa" => "ECDSA_WITH_SHA256_DER",
        _ => "RSA_EMSA_PKCS1_SHA2_256",
    }
}

/// Pings the gateway's inner address from `host` (from `bind` when given),
/// then uploads `mb` MB of pseudo-random data over TCP to it; asserts it arrives bit-exact.
fn ping_and_upload(bed: &mut Bed, host: &str, bind: Option<&str>, port: u16, mb: usize) {
    let mut ping = vec!["ping", "-c", "3", "-i", "0.2", "-W", "2"];
    if let Some(b) = bind {
        ping.extend(["-I", b]);
    }
    ping.push(GW_INNER);
    bed.ok(host, &ping);
    let u = bed.upload_sink(host, &test_bytes(mb << 20, u32::from(port)), GW_INNER, port);
    bed.socat_upload(host, &u, GW_INNER, port, bind);
    bed.assert_uploaded(
        &u,
        &format!("{host}: {mb} MB upload through the tunnel arrived bit-exact"),
    );
}

/// Puts a host's inner address on its `lo`: kernel-libipsec routes the
/// protected network into its TUN with this source.
fn add_inner(bed: &Bed, host: &str, inner: &str) {
    bed.ok(host, &["ip", "addr", "add", inner, "dev", "lo"]);
}

/// The private key of `pki/<kind>/<name>.key` as spimux loads it: strongSwan's
/// `pki` writes P-256 keys as SEC1 "EC PRIVATE KEY", spimux takes PKCS#8
/// (RSA keys load as they are, PKCS#1).
fn spimux_key(bed: &Bed, kind: &str, name: &str) -> PathBuf {
    let src = pki(kind, &format!("{name}.key"));
    if kind != "ecdsa" {
        return src;
    }
    let out = bed.dir.join(format!("{name}-{kind}.p8.pem"));
    let o = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(&src)
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// A strongSwan initiator for `host` with `pki_dir`'s `<host>.pem`,
/// `<host>.key` and `ca.pem`, in the bed's directory `tag`.
fn cert_initiator(
    bed: &Bed,
    tag: &str,
    host: &str,
    addr: &str,
    inner: &str,
    pki_dir: &Path,
) -> PathBuf {
    let d = SwanDir::new(bed, tag);
    let (cert, ca) = d.credentials(
        &pki_dir.join(format!("{host}.pem")),
        &pki_dir.join(format!("{host}.key")),
        &pki_dir.join("ca.pem"),
    );
    d.render(
        "initiator-cert.conf.in",
        &[
            format!("HOST_ADDR={addr}"),
            format!("INNER={inner}/32"),
            format!("ID={host}.spimux.test"),
            format!("CERT={cert}"),
            format!("CACERT={ca}"),
        ],
    )
}

/// An initiator on h1 whose certificate names h1.spimux.test but comes from
/// another CA (made now by ike_pki.sh: the same names, other keys) tries
/// the responder; asserts it is refused with AUTHENTICATION_FAILED after
/// presenting its certificate.
fn rogue_initiator_is_refused(bed: &mut Bed) {
    let rogue = bed.dir.join("rogue-pki");
    let o = Command::new("bash")
        .arg(format!("{ROOT}/testbed/ike_pki.sh"))
        .arg(&rogue)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ike_pki.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, addr, inner, _) = HOSTS[0];
    let conf = cert_initiator(bed, "rogue-h1", "h1", addr, inner, &rogue.join("ecdsa"));
    let c = start_charon(bed, "h1", "rogue-h1", &conf, &[]);
    let o = c.swanctl(&["--initiate", "--child", "spimux", "--timeout", "10"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "the rogue certificate was accepted:\n{out}"
    );
    assert!(out.contains("AUTHENTICATION_FAILED"), "{out}\n{}", c.log());
    // It did present its certificate: the chain to an unknown CA is what failed.
    let sent =
        "sending end entity cert \"C=XX, O=spimux test (PUBLIC TEST KEYS), CN=h1.spimux.test\"";
    assert!(out.contains(sent), "{out}");
    c.stop();
    // The IKE thread publishes its counters shortly after handling a message.
    bed.wait_endpoint_metric("responder", "spimux_ike_auth_failures_total", 1.0);
    let m = bed.endpoint_metrics("responder");
    assert_metric(&m, "spimux_ike_auth_failures_total", 1.0);
    assert_metric(
        &m,
        "spimux_ike_exchanges_total{exchange=\"ike_auth\",role=\"responder\",result=\"error\"}",
        1.0,
    );
    println!(
        "rogue h1.spimux.test (certificate from an unknown CA): refused with AUTHENTICATION_FAILED"
    );
}

#[test]
fn strongswan_initiators_with_certificates_through_the_router_to_the_ike_responder() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    // The gateway proves itself with gw.spimux.test of the same PKI as each host.
    let keys: Vec<PathBuf> = HOSTS.iter().map(|h| spimux_key(&bed, h.3, "gw")).collect();
    let r = edited(&bed, "responder.toml", |t| {
        for (i, (h, _, _, kind)) in HOSTS.iter().enumerate() {
            // kernel-libipsec does UDP encapsulation only: answer its NAT detection.
            peer_ike(t, i).insert("nat_detection".into(), toml::Value::String("auto".into()));
            let (cert, ca) = (pki(kind, "gw.pem"), pki(kind, "ca.pem"));
            let files = CertFiles {
                cert: &cert,
                key: &keys[i],
                ca: &ca,
            };
            use_certs(
                peer_ike(t, i),
                "gw.spimux.test",
                &format!("{h}.spimux.test"),
                files,
            );
        }
    });
    bed.start_endpoint("responder", "srv", "responder", &r, 9781);
    for (h, _, inner, _) in HOSTS {
        add_inner(&bed, h, &format!("{inner}/32"));
    }
    rogue_initiator_is_refused(&mut bed);

    // Then the real h1 (ECDSA) and h2 (RSA).
    for (i, (h, addr, inner, kind)) in HOSTS.iter().enumerate() {
        let conf = cert_initiator(&bed, &format!("{h}-{kind}"), h, addr, inner, &pki(kind, ""));
        let c = start_charon(&mut bed, h, h, &conf, &["spimux"]);
        // strongSwan checked the gateway's certificate chain and signature.
        let want = format!(
            "authentication of 'gw.spimux.test' with {} successful",
            sig_name(kind)
        );
        assert!(c.log().contains(&want), "{want}:\n{}", c.log());
        println!("strongSwan on {h}: {want}");
        ping_and_upload(&mut bed, h, Some(inner), 7001 + i as u16, 4);
    }
    let m = bed.endpoint_metrics("responder");
    assert_metric(&m, "spimux_ike_sas{state=\"established\"}", 2.0);
    assert_metric(&m, "spimux_ike_spis_total{how=\"derived\"}", 2.0);
    for (h, _, _, kind) in HOSTS {
        // Each host proved itself by a signature of its certificate's key type.
        assert_metric(
            &m,
            &format!("spimux_ike_peer_auths_total{{method=\"{kind}\"}}"),
            1.0,
        );
        // The responder's SPI carries the SPI-hash tag of strongSwan's.
        println!("{h} ({kind} certificate): {}", assert_derived(&m, h));
    }
    assert_metric(&m, "spimux_ike_peer_auths_total{method=\"psk\"}", 0.0);
    assert_metric(&m, "spimux_ike_auth_failures_total", 1.0);
}

/// A strongSwan responder config on srv for both clients: h1 by PSK (id h1),
/// h2 by its RSA certificate (h2.spimux.test), as two connections.
fn strongswan_responder(bed: &Bed) -> PathBuf {
    let d = SwanDir::new(bed, "srv-responder");
    let (cert, ca) = d.credentials(
        &pki("rsa", "gw.pem"),
        &pki("rsa", "gw.key"),
        &pki("rsa", "ca.pem"),
    );
    let psk = render("responder-psk.conf.in", &["PEER_ID=h1".into()]);
    let vars = [
        "PEER_ID=h2.spimux.test".into(),
        format!("CERT={cert}"),
        format!("CACERT={ca}"),
    ];
    // Both templates name their connection "spimux".
    let certs = render("responder-cert.conf.in", &vars).replacen(
        "\n  spimux {\n",
        "\n  spimux-cert {\n",
        1,
    );
    assert!(certs.contains("spimux-cert {"), "{certs}");
    d.write_conf(&format!("{psk}\n{certs}"))
}

#[test]
fn spimux_clients_through_the_router_to_a_strongswan_responder() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let conf = strongswan_responder(&bed);
    // The protected network behind strongSwan; kernel-libipsec routes the
    // clients' inner addresses into its TUN from here.
    add_inner(&bed, "srv", &format!("{GW_INNER}/24"));
    let gw = start_charon(&mut bed, "srv", "srv", &conf, &[]);
    let c1 = edited(&bed, "client-h1.toml", |_| {});
    let c2 = edited(&bed, "client-h2.toml", |t| {
        let (cert, key, ca) = (
            pki("rsa", "h2.pem"),
            pki("rsa", "h2.key"),
            pki("rsa", "ca.pem"),
        );
        let files = CertFiles {
            cert: &cert,
            key: &key,
            ca: &ca,
        };
        use_certs(peer_ike(t, 0), "h2.spimux.test", "gw.spimux.test", files);
    });
    bed.start_endpoint("h1", "h1", "client", &c1, 9782);
    bed.start_endpoint("h2", "h2", "client", &c2, 9782);
    for (i, (h, _, _, _)) in HOSTS.iter().enumerate() {
        let up = bed.wait_endpoint_metric(h, "spimux_ike_child_sas{state=\"installed\"}", 1.0);
        assert_eq!(
            up,
            1.0,
            "{h}: no CHILD_SA\n{}\nstrongSwan:\n{}",
            bed.log(h),
            gw.log()
        );
        ping_and_upload(&mut bed, h, None, 7201 + i as u16, 4);
    }
    let log = gw.log();
    for want in [
        "authentication of 'h1' with pre-shared key successful".to_string(),
        format!(
            "authentication of 'h2.spimux.test' with {} successful",
            sig_name("rsa")
        ),
    ] {
        assert!(log.contains(&want), "strongSwan: {want}:\n{log}");
        println!("strongSwan responder: {want}");
    }
    let sas = gw.swanctl(&["--list-sas"]);
    let sas = String::from_utf8_lossy(&sas.stdout);
    assert_eq!(sas.matches("INSTALLED, TUNNEL-in-UDP").count(), 2, "{sas}");
    for (h, _, inner, _) in HOSTS {
        // strongSwan narrowed its 10.98.0.0/24 to each client's inner address.
        assert!(sas.contains(&format!("remote {inner}/32")), "{sas}");
        let m = bed.endpoint_metrics(h);
        // The spimux router translates the client: NAT detected, ESP in UDP 4500.
        assert_eq!(sa_label(&m, "gateway", "encap"), "udp", "{h}:\n{m}");
        let kind = if h == "h1" { "psk" } else { "rsa" };
        assert_metric(
            &m,
            &format!("spimux_ike_peer_auths_total{{method=\"{kind}\"}}"),
            1.0,
        );
        println!(
            "{h}: CHILD_SA with strongSwan up, ESP in UDP, the gateway authenticated by {kind}"
        );
    }

    // strongSwan rekeys the CHILD_SAs (by child name, both are "spimux"),
    // then the IKE SAs (by connection): the clients answer, deriving their
    // new inbound SPIs, and the tunnels carry on.
    for (what, name) in [
        ("--child", "spimux"),
        ("--ike", "spimux"),
        ("--ike", "spimux-cert"),
    ] {
        let o = gw.swanctl(&["--rekey", what, name]);
        assert!(
            o.status.success(),
            "swanctl --rekey {what} {name}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    for (i, (h, _, _, _)) in HOSTS.iter().enumerate() {
        let ike_rekeys = "spimux_ike_rekeys_total{kind=\"ike\",by=\"peer\"}";
        bed.wait_endpoint_metric(h, ike_rekeys, 1.0);
        let m = bed.endpoint_metrics(h);
        assert_metric(&m, ike_rekeys, 1.0);
        assert_metric(
            &m,
            "spimux_ike_rekeys_total{kind=\"child\",by=\"peer\"}",
            1.0,
        );
        assert_metric(&m, "spimux_ike_spis_total{how=\"derived\"}", 1.0);
        // The client's new inbound SPI carries the tag of strongSwan's (the
        // router's inside-derives relation).
        println!(
            "{h} after strongSwan's rekeys: {}",
            assert_derived(&m, "gateway")
        );
        ping_and_upload(&mut bed, h, None, 7211 + i as u16, 2);
    }
    let sas = gw.swanctl(&["--list-sas"]);
    println!(
        "strongSwan after its rekeys:\n{}",
        String::from_utf8_lossy(&sas.stdout)
    );
}
