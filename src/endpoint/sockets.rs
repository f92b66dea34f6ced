//! The endpoint's network-side sockets (plain ESP and ESP in UDP), shared
//! by the packet threads and the IKE thread (NAT-T IKE leaves by the UDP one).

use crate::io::outer::{RawEsp, UdpEncap};

/// The network-side sockets.
pub struct Outer {
    /// Plain ESP.
    pub raw: RawEsp,
    /// ESP in UDP.
    pub udp: UdpEncap,
    /// Local port of `udp`.
    pub udp_port: u16,
}
