//! Bytes per NAT mapping at 1M mappings, measured with a counting allocator:
//! `cargo bench --bench memory`. Each mapping is one UDP flow (one mapping,
//! one session, one reverse entry) — the common case.

use spimux::nat::config::Limits;
use spimux::nat::{Endpoint, EspConfig, Nat, NatConfig, NatEvents};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = NatConfig {
        limits: Limits {
            max_sessions: u32::MAX,
            max_sessions_per_host: u32::MAX,
            new_sessions_per_sec_per_host: u32::MAX / 2,
            new_sessions_burst: u32::MAX / 2,
            max_esp_spis_per_host: 64,
            max_ports_per_host: u32::MAX,
            max_hosts: u32::MAX,
        },
        ..NatConfig::default()
    };
    // 1M mappings need more than one address's 64512 ports: a pool of 32 external addresses.
    let ext: Vec<Ipv4Addr> = (0..32).map(|i| Ipv4Addr::from(0xcb00_7100 + i)).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let nat = Nat::new(cfg, EspConfig::default(), ext, 9).unwrap();
    let empty = LIVE.load(Ordering::Relaxed) - before;
    let mut ev = NatEvents::default();
    let r = Endpoint {
        ip: Ipv4Addr::new(198, 51, 100, 69),
        port: 53,
    };
    let mut made = 0u32;
    let mut i = 0u32;
    while made < n && i < n * 2 {
        let host = Ipv4Addr::from(0x0a00_0000 + (i >> 8));
        let port = 1024 + (i & 0xff) as u16;
        if nat
            .table
            .outbound(17, Endpoint { ip: host, port }, r, 0, 0, &mut ev)
            .is_ok()
        {
            made += 1;
        }
        i += 1;
    }
    let used = LIVE.load(Ordering::Relaxed) - before - empty;
    println!("mappings: {}", nat.table.mapping_count());
    println!("sessions: {}", nat.table.session_count());
    println!("inside hosts: {}", nat.table.host_count());
    println!("empty table (port bitmaps): {} KiB", empty / 1024);
    println!(
        "heap for {made} mappings: {:.1} MiB",
        used as f64 / (1 << 20) as f64
    );
    println!(
        "bytes per mapping: {:.1}",
        used as f64 / f64::from(made.max(1))
    );
}
