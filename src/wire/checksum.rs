//! Internet checksum (RFC 1071) and incremental updates (RFC 1624).

use core::net::Ipv4Addr;

/// One's-complement sum of `data` as 16-bit big-endian words, not
/// complemented. The result is folded to at most 0xffff, so callers can add a
/// pseudo-header sum (or several such sums) to it without overflow.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    // Fold 64 -> 16 keeping the carries.
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a 32-bit partial sum into 16 bits.
pub fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum field value for `data` (complement of the folded sum).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol)
        + u32::from(length)
}

/// RFC 1624 eqn. 3: new checksum after one 16-bit word changed from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// RFC 1624 update for a 32-bit field (an IPv4 address) changing.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example bytes.
    const RFC1071: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn rfc1071_example_sum() {
        assert_eq!(fold(sum(&RFC1071)), 0xddf2);
        assert_eq!(checksum(&RFC1071), !0xddf2);
    }

    /// Fuzzing found `pseudo_header + sum` overflowing u32 in the TCP/UDP
    /// checksums: a long run of 0xff bytes summed to nearly 2^32.
    #[test]
    fn sum_leaves_room_for_a_pseudo_header() {
        let data = [0xffu8; 4096];
        assert!(sum(&data) <= 0xffff);
        assert_eq!(fold(sum(&data)), 0xffff);
        let p = pseudo_header(
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(255, 255, 255, 255),
            255,
            u16::MAX,
        );
        assert!(p.checked_add(sum(&data)).is_some());
        assert_eq!(fold(sum(&RFC1071)), 0xddf2, "same folded value as before");
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03])), 0x0102 + 0x0300);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data = [
            0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 1, 0, 0, 10, 6, 1, 2, 198, 51, 100, 69,
        ];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        // Rewrite the source address and update incrementally.
        let old = u32::from_be_bytes([10, 6, 1, 2]);
        let new = u32::from_be_bytes([203, 0, 113, 10]);
        let updated = update32(c, old, new);
        data[12..16].copy_from_slice(&new.to_be_bytes());
        data[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, checksum(&data));
        // And a 16-bit field (TTL/protocol word).
        let upd2 = update16(updated, 0x4001, 0x3f01);
        data[8] = 0x3f;
        assert_eq!(upd2, checksum(&data));
    }

    #[test]
    fn unchanged_field_keeps_checksum() {
        for c in [0x0000u16, 0x1234, 0xfffe, 0x8000] {
            for w in [0x0000u16, 0xffff, 0x4500] {
                assert_eq!(update16(c, w, w), c);
            }
        }
    }
}
