//! NAT_DETECTION_SOURCE_IP / NAT_DETECTION_DESTINATION_IP data (RFC 7296 §2.23).

use ring::digest;
use std::net::SocketAddrV4;

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port). SHA-1 is what
/// the RFC fixes here (a hash of public values, not a signature).
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddrV4) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    ctx.update(&addr.ip().octets());
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0u8; 20];
    for (o, d) in out.iter_mut().zip(ctx.finish().as_ref()) {
        *o = *d;
    }
    out
}
