//! The IKE part of the endpoint configuration on arbitrary UTF-8 text: an
//! `[ike]` table and one `[peer]` table (a `[peers.ike]` entry), put into an
//! otherwise valid responder and client configuration and taken through the
//! start-up validation (proposal strings, identities, PSK, lifetimes,
//! engine limits): Ok or an error naming a field, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use spimux::endpoint::config::{EndpointConfig, Role};
use spimux::endpoint::ike_config::{IkeConfig, PeerIkeConfig};
use spimux::endpoint::{prepare, StartError};
use std::path::PathBuf;

/// The fuzzed tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    ike: IkeConfig,
    peer: PeerIkeConfig,
}

const BASE: &str = r#"
[tun]
name = "spx0"
address = "10.99.0.1/24"
mtu = 1400
[mobility]
gateway = "10.99.0.2"
[[peers]]
name = "h1"
inner = ["10.98.0.2/32"]
remote = "198.51.100.69"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut doc) = toml::from_str::<Doc>(text) else {
        return;
    };
    // No file reads from the fuzzer.
    for f in [&mut doc.peer.cert, &mut doc.peer.key, &mut doc.peer.ca] {
        if f.is_some() {
            *f = Some(PathBuf::from("/nonexistent/spimux-fuzz"));
        }
    }
    let mut cfg: EndpointConfig = toml::from_str(BASE).expect("base config");
    cfg.ike = doc.ike;
    cfg.peers[0].ike = Some(doc.peer);
    for role in [Role::Responder, Role::Client] {
        match prepare(&cfg, role) {
            Ok(_) => {}
            Err(StartError::Config(e)) => assert!(!e.field.is_empty() && !e.why.is_empty()),
            Err(StartError::Io(e)) => panic!("prepare did I/O: {e}"),
        }
    }
});
