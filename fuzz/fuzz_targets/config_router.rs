//! Router configuration on arbitrary UTF-8 text: an error or a config,
//! never a panic; a config that parsed validates again, and survives a
//! round trip through TOML unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::router::config::RouterConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = RouterConfig::parse(text) else {
        return;
    };
    cfg.validate().expect("parse validates");
    assert!(cfg.workers() >= 1);
    let again = toml::to_string(&cfg).expect("a parsed config serializes");
    assert_eq!(RouterConfig::parse(&again).as_ref(), Ok(&cfg), "{again}");
});
