//! spimux: a userspace NAT router dataplane that lets many inside hosts run
//! plain IPsec ESP to one outside responder through one public address, by
//! matching inbound ESP on a hash relation between SPIs.
//!
//! Layers, top to bottom (dependencies point down only):
//! - [`router`]: the daemon (threads, ARP, routing, metrics, config).
//! - [`io`]: packet I/O backends behind the [`io::Link`] trait.
//! - protocol cores without I/O or clock reads: [`nat`], [`spi`].
//! - [`rate_limit`]: the token bucket the cores rate-limit outside-triggered work with.
//! - [`integrity`]: truncated-HMAC verification shared by the `esp` and `ike` cores.
//! - [`wire`]: checked zero-copy packet views.

pub mod daemon;
pub mod endpoint;
pub mod esp;
pub mod ike;
pub mod integrity;
pub mod io;
pub mod live;
pub mod mobility;
pub mod nat;
pub mod rate_limit;
pub mod router;
pub mod spi;
pub mod wire;
