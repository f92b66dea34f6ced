//! End-to-end: the endpoints' control sockets. Two `spimux client`s behind
//! the spimux router keyed by IKE to `spimux responder`; `show tunnels|ike|
//! child|mobility` on both ends list the SAs the negotiation created (the
//! same SPIs on both sides, the responder's derived from the client's) and
//! their traffic; a reload rotates one peer's PSK and changes IKE limits
//! and the log level (to warn) without touching an established tunnel (the old key
//! is refused afterwards, the new one accepted); invalid and restart-only
//! files are refused and counted. Needs root; never skipped in CI.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::endpoint::*;
use support::*;

const GW_INNER: &str = "10.99.0.1";
const INSTALLED: &str = "spimux_ike_child_sas{state=\"installed\"}";

fn start_client(bed: &mut Bed, h: &str, cfg: &std::path::Path) {
    bed.start_endpoint(&format!("client-{h}"), h, "client", cfg, 9782);
}

fn ping(bed: &Bed, h: &str) {
    bed.ok(h, &["ping", "-c", "3", "-i", "0.2", "-W", "2", GW_INNER]);
}

/// The rows of `key` in a show answer whose `peer` is `peer`.
fn rows<'a>(v: &'a Value, key: &str, peer: &str) -> Vec<&'a Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .filter(|r| r["peer"] == peer)
        .collect()
}

#[test]
fn endpoints_show_their_sas_and_reload_credentials_live() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let resp_cfg = edited(&bed, "responder.toml", |_| {});
    let original = std::fs::read_to_string(&resp_cfg).unwrap();
    bed.start_endpoint("responder", "srv", "responder", &resp_cfg, 9781);
    for h in ["h1", "h2"] {
        let cfg = edited(&bed, &format!("client-{h}.toml"), |_| {});
        start_client(&mut bed, h, &cfg);
        assert_eq!(
            bed.wait_endpoint_metric(&format!("client-{h}"), INSTALLED, 1.0),
            1.0
        );
        ping(&bed, h);
    }

    // Reads under load: a fixed-rate UDP stream through h1's tunnel loses
    // nothing while both ends answer show commands in a loop.
    bed.spawn("srv", &["iperf3", "-s", "-1", "-B", GW_INNER]);
    bed.wait_listening("srv", "t", 5201);
    let load = bed
        .cmd(
            "h1",
            &[
                "timeout", "30", "iperf3", "-c", GW_INNER, "-J", "-u", "-b", "5M", "-t", "3", "-l",
                "1000",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut reads = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        for c in ["tunnels", "ike", "child", "mobility"] {
            bed.endpoint_show("responder", &["show", c]);
        }
        bed.endpoint_show("client-h1", &["show", "child"]);
        reads += 5;
    }
    let o = load.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sum = &r["end"]["sum"];
    assert_eq!(
        sum["lost_packets"], 0,
        "no loss while {reads} reads ran: {sum}"
    );
    assert!(sum["packets"].as_u64() > Some(1000), "{sum}");

    // Tunnels: per peer, the SPIs the metrics report, the router's public
    // address (plain ESP: no port), traffic.
    let m = bed.endpoint_metrics("responder");
    let t = bed.endpoint_show("responder", &["show", "tunnels"]);
    assert_eq!(t["tunnels"].as_array().unwrap().len(), 3, "{t}");
    for h in ["h1", "h2"] {
        let row = rows(&t, "tunnels", h)[0];
        let (local, remote, encap) = sa_info(&m, h);
        assert_eq!(
            (row["local_spi"].as_str(), row["remote_spi"].as_str()),
            (Some(&*local), Some(&*remote))
        );
        assert_eq!(
            (row["keying"].as_str(), row["encap"].as_str()),
            (Some("ike"), Some(&*encap))
        );
        assert_eq!(row["derived"], true);
        assert!(row["remote"] == "203.0.113.10", "{row}");
        assert!(row["rx_packets"].as_u64() >= Some(3), "{row}");
    }
    assert_eq!(rows(&t, "tunnels", "m1")[0]["remote"], Value::Null);

    // IKE SAs: the same pair of SPIs on both ends.
    let ike = bed.endpoint_show("responder", &["show", "ike"]);
    assert_eq!(ike["ike_sas"].as_array().unwrap().len(), 2, "{ike}");
    let child = bed.endpoint_show("responder", &["show", "child"]);
    for h in ["h1", "h2"] {
        let gw = rows(&ike, "ike_sas", h)[0];
        assert_eq!(
            (gw["role"].as_str(), gw["state"].as_str()),
            (Some("responder"), Some("established"))
        );
        let c = bed.endpoint_show(&format!("client-{h}"), &["show", "ike"]);
        let cl = rows(&c, "ike_sas", "gateway")[0];
        assert_eq!(cl["role"], "initiator");
        assert_eq!((&cl["spi_i"], &cl["spi_r"]), (&gw["spi_i"], &gw["spi_r"]));
        assert_eq!(cl["suite"], gw["suite"]);
        // CHILD_SAs: our inbound is the client's outbound, derived from its inbound, in use.
        let gc = rows(&child, "child_sas", h)[0];
        let cc = bed.endpoint_show(&format!("client-{h}"), &["show", "child"]);
        let cc = rows(&cc, "child_sas", "gateway")[0];
        assert_eq!(
            (&gc["inbound_spi"], &gc["outbound_spi"]),
            (&cc["outbound_spi"], &cc["inbound_spi"])
        );
        assert_eq!(
            (gc["datapath"].as_str(), cc["datapath"].as_str()),
            (Some("in_use"), Some("in_use"))
        );
        assert!(gc["rx_seq"].as_u64() >= Some(3), "{gc}");
        let check = Command::new(SPIMUX)
            .args(["spi", "check"])
            .args([
                gc["inbound_spi"].as_str().unwrap(),
                cc["inbound_spi"].as_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(
            check.success(),
            "{h}: the responder's SPI carries the client's tag"
        );
        assert_eq!(
            gc["remote_ts"][0],
            format!("10.98.0.{}/32", if h == "h1" { 2 } else { 3 })
        );
    }
    // Filters, text tables, errors.
    let one = bed.endpoint_show("responder", &["show", "child", "--peer", "h2"]);
    assert_eq!(one["child_sas"].as_array().unwrap().len(), 1);
    let (ok, _, err) = bed.endpoint_ctl("responder", &["show", "ike", "--peer", "nobody"]);
    assert!(!ok && err.contains("no such peer"), "{err}");
    let (ok, text, _) = bed.endpoint_ctl("responder", &["show", "peers"]);
    assert!(
        ok && text.contains("tunnels (3):") && text.contains("LOCAL_SPI"),
        "{text}"
    );
    let mob = bed.endpoint_show("responder", &["show", "mobility"]);
    assert_eq!(mob["mobility"], "gateway");
    assert_eq!(mob["registrations"].as_array().unwrap().len(), 3);
    let mob = bed.endpoint_show("client-h1", &["show", "mobility"]);
    assert_eq!(mob["mobility"], "off");

    // Reload: h2's PSK rotated, IKE limits and the log level changed.
    let mut t: toml::Table = original.parse().unwrap();
    peer_ike(&mut t, 1).insert("psk".into(), "rotated-psk-for-h2-only".into());
    t["ike"]
        .as_table_mut()
        .unwrap()
        .insert("max_half_open".into(), 512.into());
    t.insert("log".into(), toml::toml! { level = "warn" }.into());
    std::fs::write(&resp_cfg, toml::to_string(&t).unwrap()).unwrap();
    let r = bed.endpoint_show("responder", &["reload"]);
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["changed"], serde_json::json!(["ike", "peers.ike", "log"]));
    // The established tunnels are untouched.
    for h in ["h1", "h2"] {
        ping(&bed, h);
    }
    let sas = |v: &Value| -> Vec<(String, String, String)> {
        let mut k: Vec<_> = v["ike_sas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["spi_i"].to_string(),
                    s["spi_r"].to_string(),
                    s["state"].to_string(),
                )
            })
            .collect();
        k.sort();
        k
    };
    let after = bed.endpoint_show("responder", &["show", "ike"]);
    assert_eq!(sas(&after), sas(&ike), "the same IKE SAs after the reload");

    // h2 on the old key is refused from now on; on the new key it gets in.
    let failures = "spimux_ike_auth_failures_total";
    let before = metric_in(&bed.endpoint_metrics("responder"), failures);
    assert!(bed.stop_endpoint("client-h2"));
    let old_key = edited(&bed, "client-h2.toml", |_| {});
    start_client(&mut bed, "h2", &old_key);
    assert!(
        bed.wait_endpoint_metric("responder", failures, before + 1.0) >= before + 1.0,
        "the old PSK is refused:\n{}",
        bed.log("responder")
    );
    assert!(bed.stop_endpoint("client-h2"));
    let new_key = edited(&bed, "client-h2.toml", |t| {
        peer_ike(t, 0).insert("psk".into(), "rotated-psk-for-h2-only".into());
    });
    start_client(&mut bed, "h2", &new_key);
    assert_eq!(
        bed.wait_endpoint_metric("client-h2", INSTALLED, 1.0),
        1.0,
        "{}",
        bed.log("client-h2")
    );
    ping(&bed, "h2");
    ping(&bed, "h1");

    // Refused whole: an invalid value (named), a restart-only change (named).
    let good = std::fs::read_to_string(&resp_cfg).unwrap();
    std::fs::write(
        &resp_cfg,
        good.replace("max_half_open = 512", "max_half_open = 0"),
    )
    .unwrap();
    let (ok, _, err) = bed.endpoint_ctl("responder", &["reload"]);
    assert!(!ok && err.contains("ike.max_half_open"), "{err}");
    std::fs::write(&resp_cfg, good.replace("mtu = 1400", "mtu = 1300")).unwrap();
    let (ok, _, err) = bed.endpoint_ctl("responder", &["reload"]);
    assert!(
        !ok && err.contains("tun changed") && err.contains("restart"),
        "{err}"
    );
    // SIGHUP with the file in force: nothing to do, counted as such.
    std::fs::write(&resp_cfg, &good).unwrap();
    let pid = bed.endpoint_pid("responder").to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let unchanged = "spimux_config_reloads_total{result=\"unchanged\"}";
    assert_eq!(bed.wait_endpoint_metric("responder", unchanged, 1.0), 1.0);
    let m = bed.endpoint_metrics("responder");
    assert_metric(&m, "spimux_config_reloads_total{result=\"applied\"}", 1.0);
    assert_metric(&m, "spimux_config_reloads_total{result=\"invalid\"}", 1.0);
    assert_metric(
        &m,
        "spimux_config_reloads_total{result=\"needs_restart\"}",
        1.0,
    );
    ping(&bed, "h1");
    let log = bed.log("responder");
    // The reloaded level is in force: h2's new IKE SA is not logged at info.
    assert_eq!(log.matches("IKE SA established").count(), 2, "{log}");
    assert!(log.contains("configuration reload refused"), "{log}");
}
