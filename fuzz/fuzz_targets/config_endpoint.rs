//! Endpoint configuration (responder and client) on arbitrary UTF-8 text:
//! an error or a config, never a panic; whatever parses goes through the
//! daemon's whole start-up validation (`endpoint::prepare`, as `--check`
//! does: SPIs, keys, mobility, IKE policies and engine limits) for both
//! roles, which must answer Ok or an error naming a field.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::endpoint::config::{EndpointConfig, Role};
use spimux::endpoint::{prepare, StartError};
use std::path::PathBuf;

/// Certificate and key paths point nowhere: the fuzzer must not read files.
fn no_files(cfg: &mut EndpointConfig) {
    for p in &mut cfg.peers {
        if let Some(ike) = &mut p.ike {
            for f in [&mut ike.cert, &mut ike.key, &mut ike.ca] {
                if f.is_some() {
                    *f = Some(PathBuf::from("/nonexistent/spimux-fuzz"));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut cfg) = toml::from_str::<EndpointConfig>(text) else {
        return;
    };
    no_files(&mut cfg);
    for role in [Role::Responder, Role::Client] {
        match prepare(&cfg, role) {
            Ok(_) => {}
            Err(StartError::Config(e)) => assert!(!e.field.is_empty() && !e.why.is_empty()),
            Err(StartError::Io(e)) => panic!("prepare did I/O: {e}"),
        }
    }
});
