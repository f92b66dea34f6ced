//! The SPI-hash scheme shared by the router and the responder.
//!
//! A cooperating responder chooses its inbound SPI `S_R` so that `tag_len`
//! bytes of it, starting at `spi_offset`, equal `tag_len` bytes of
//! `MD5(S_O)` starting at `digest_offset`, where `S_O` is the peer's inbound
//! SPI as four bytes in network order. The remaining SPI bytes are random.
//! The default layout is the seed's first example: `S_R[2..4] = MD5(S_O)[0..2]`.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// Lowest SPI that may be used on the wire (RFC 4303 §2.1).
pub const MIN_SPI: u32 = crate::wire::esp::MIN_SPI;

/// Where the hash tag sits in the SPI and which digest bytes it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layout {
    /// Number of tag bytes, 1..=4.
    pub tag_len: u8,
    /// First SPI byte (network order) that carries the tag.
    pub spi_offset: u8,
    /// First MD5 digest byte copied into the tag.
    pub digest_offset: u8,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            tag_len: 2,
            spi_offset: 2,
            digest_offset: 0,
        }
    }
}

/// Why a layout or a derivation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiError {
    /// The layout does not fit a 4-byte SPI or a 16-byte digest.
    #[error("invalid SPI layout: {0}")]
    Layout(&'static str),
    /// Every SPI byte is derived, so a reserved or live result cannot be redrawn.
    #[error("derived SPI {spi:#010x} is {why} and the layout is fully derived (tag_len = 4), so it cannot be redrawn")]
    FullyDerivedCollision {
        /// The unusable derived SPI.
        spi: u32,
        /// "reserved (< 256)" or "already live".
        why: &'static str,
    },
    /// Redrawing the random bytes kept producing unusable SPIs.
    #[error("no usable SPI after {0} draws")]
    Exhausted(u32),
}

/// MD5 of the SPI as four bytes in network order.
pub fn digest(spi: u32) -> [u8; 16] {
    Md5::digest(spi.to_be_bytes()).into()
}

impl Layout {
    /// Checks the layout fits a 4-byte SPI and a 16-byte digest.
    pub fn validate(&self) -> Result<(), SpiError> {
        if !(1..=4).contains(&self.tag_len) {
            return Err(SpiError::Layout("tag_len must be 1..=4"));
        }
        if usize::from(self.spi_offset) + usize::from(self.tag_len) > 4 {
            return Err(SpiError::Layout("spi_offset + tag_len must be <= 4"));
        }
        if usize::from(self.digest_offset) + usize::from(self.tag_len) > 16 {
            return Err(SpiError::Layout("digest_offset + tag_len must be <= 16"));
        }
        Ok(())
    }

    fn tag_from(&self, bytes: &[u8], offset: u8) -> u32 {
        let start = usize::from(offset);
        bytes
            .iter()
            .skip(start)
            .take(usize::from(self.tag_len))
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
    }

    /// The tag carried in the SPI's own bytes.
    pub fn spi_tag(&self, spi: u32) -> u32 {
        self.tag_from(&spi.to_be_bytes(), self.spi_offset)
    }

    /// The tag that a derived SPI would carry for `peer_spi`: bytes of `MD5(peer_spi)`.
    pub fn digest_tag(&self, peer_spi: u32) -> u32 {
        self.tag_from(&digest(peer_spi), self.digest_offset)
    }

    /// True when `derived` carries the tag of `peer_spi`.
    pub fn matches(&self, derived: u32, peer_spi: u32) -> bool {
        self.spi_tag(derived) == self.digest_tag(peer_spi)
    }

    /// Bit mask of the tag bytes within the SPI.
    fn tag_mask(&self) -> u32 {
        let bits = u32::from(self.tag_len) * 8;
        let low = if bits == 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        };
        let shift = 32 - u32::from(self.spi_offset) * 8 - bits;
        low << shift
    }

    /// Places the tag for `peer_spi` into `random`, keeping the other bytes.
    pub fn derive_with(&self, peer_spi: u32, random: u32) -> u32 {
        let shift = 32 - u32::from(self.spi_offset) * 8 - u32::from(self.tag_len) * 8;
        (random & !self.tag_mask()) | (self.digest_tag(peer_spi) << shift)
    }

    /// Derives a usable SPI for `peer_spi`: not reserved (< 256) and not `live`.
    /// Random bytes come from `draw`; they are redrawn up to `max_draws` times.
    pub fn derive(
        &self,
        peer_spi: u32,
        mut draw: impl FnMut() -> u32,
        live: impl Fn(u32) -> bool,
        max_draws: u32,
    ) -> Result<u32, SpiError> {
        self.validate()?;
        if self.tag_len == 4 {
            let spi = self.derive_with(peer_spi, 0);
            return match (spi < MIN_SPI, live(spi)) {
                (true, _) => Err(SpiError::FullyDerivedCollision {
                    spi,
                    why: "reserved (< 256)",
                }),
                (_, true) => Err(SpiError::FullyDerivedCollision {
                    spi,
                    why: "already live",
                }),
                _ => Ok(spi),
            };
        }
        for _ in 0..max_draws {
            let spi = self.derive_with(peer_spi, draw());
            if spi >= MIN_SPI && !live(spi) {
                return Ok(spi);
            }
        }
        Err(SpiError::Exhausted(max_draws))
    }
}

/// What an allocator did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeriveStats {
    /// SPIs derived and handed out.
    pub derived: u64,
    /// Extra draws because a candidate was reserved or live.
    pub redraws: u64,
    /// Derivations refused (fully derived collision or exhausted draws).
    pub refused: u64,
    /// SPIs reserved as given (configured, not derived).
    pub reserved: u64,
}

/// Hands out a responder's inbound SPIs: derived from the peer's SPI under
/// the layout, never reserved (< 256) and never one that is live here.
#[derive(Debug)]
pub struct SpiAllocator {
    layout: Layout,
    live: std::collections::HashSet<u32>,
    /// Counts of what happened.
    pub stats: DeriveStats,
}

/// Draws before giving up; with a 2-byte tag a live-set collision needs ~65k live SPIs.
pub const MAX_DRAWS: u32 = 64;

impl SpiAllocator {
    /// An allocator for `layout` (checked).
    pub fn new(layout: Layout) -> Result<Self, SpiError> {
        layout.validate()?;
        Ok(SpiAllocator {
            layout,
            live: Default::default(),
            stats: DeriveStats::default(),
        })
    }

    /// Marks a configured SPI live; false when it already was.
    pub fn reserve(&mut self, spi: u32) -> bool {
        let fresh = self.live.insert(spi);
        if fresh {
            self.stats.reserved += 1;
        }
        fresh
    }

    /// Derives and marks live a new SPI for `peer_spi`, random bytes from `draw`.
    pub fn allocate(
        &mut self,
        peer_spi: u32,
        mut draw: impl FnMut() -> u32,
    ) -> Result<u32, SpiError> {
        let mut draws = 0u64;
        let live = &self.live;
        let r = self.layout.derive(
            peer_spi,
            || {
                draws += 1;
                draw()
            },
            |s| live.contains(&s),
            MAX_DRAWS,
        );
        self.stats.redraws += draws.saturating_sub(1);
        match r {
            Ok(spi) => {
                self.live.insert(spi);
                self.stats.derived += 1;
                Ok(spi)
            }
            Err(e) => {
                self.stats.refused += 1;
                Err(e)
            }
        }
    }

    /// Marks live a random SPI (not derived: we propose it and the peer
    /// answers), never reserved and never live; random bytes from `draw`.
    pub fn allocate_random(&mut self, mut draw: impl FnMut() -> u32) -> Result<u32, SpiError> {
        for _ in 0..MAX_DRAWS {
            let spi = draw();
            if spi >= MIN_SPI && self.live.insert(spi) {
                return Ok(spi);
            }
        }
        self.stats.refused += 1;
        Err(SpiError::Exhausted(MAX_DRAWS))
    }

    /// Returns an SPI to the pool (SA deleted).
    pub fn release(&mut self, spi: u32) {
        self.live.remove(&spi);
    }

    /// True when `spi` is live.
    pub fn is_live(&self, spi: u32) -> bool {
        self.live.contains(&spi)
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// Parses an SPI written as `0x…` hex or decimal.
pub fn parse_spi(s: &str) -> Result<u32, std::num::ParseIntError> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_vectors_from_design() {
        assert_eq!(
            digest(0xD456_0CA1),
            [
                0x46, 0xe0, 0xec, 0xc1, 0x6e, 0xf7, 0x95, 0x29, 0x75, 0xa9, 0xfa, 0xee, 0xef, 0xb2,
                0x96, 0x17
            ]
        );
        assert_eq!(
            digest(0xB728_5662),
            [
                0xca, 0x0d, 0x03, 0x06, 0x2a, 0xb2, 0x3d, 0x92, 0xdf, 0x99, 0x45, 0x8d, 0x1d, 0x80,
                0x68, 0xb0
            ]
        );
    }

    #[test]
    fn default_layout_puts_digest_head_in_spi_tail() {
        let l = Layout::default();
        l.validate().unwrap();
        let s = l.derive_with(0xD456_0CA1, 0xABCD_0000);
        assert_eq!(s, 0xABCD_46E0);
        assert!(l.matches(s, 0xD456_0CA1));
        assert!(!l.matches(s, 0xB728_5662));
        assert_eq!(l.spi_tag(s), 0x46e0);
        assert_eq!(l.digest_tag(0xB728_5662), 0xca0d);
    }

    #[test]
    fn other_layouts() {
        let l = Layout {
            tag_len: 3,
            spi_offset: 0,
            digest_offset: 13,
        };
        l.validate().unwrap();
        // MD5(D4560CA1)[13..16] = b2 96 17
        assert_eq!(l.derive_with(0xD456_0CA1, 0x0000_00ff), 0xB296_17FF);
        let full = Layout {
            tag_len: 4,
            spi_offset: 0,
            digest_offset: 12,
        };
        assert_eq!(full.derive_with(0xD456_0CA1, 0x1234_5678), 0xefb2_9617);
    }

    #[test]
    fn invalid_layouts_refused() {
        for l in [
            Layout {
                tag_len: 0,
                spi_offset: 0,
                digest_offset: 0,
            },
            Layout {
                tag_len: 5,
                spi_offset: 0,
                digest_offset: 0,
            },
            Layout {
                tag_len: 2,
                spi_offset: 3,
                digest_offset: 0,
            },
            Layout {
                tag_len: 2,
                spi_offset: 0,
                digest_offset: 15,
            },
        ] {
            assert!(matches!(l.validate(), Err(SpiError::Layout(_))), "{l:?}");
        }
    }

    #[test]
    fn derive_redraws_reserved_and_live() {
        let l = Layout::default();
        let mut draws = vec![0x0000_0000u32, 0x1111_0000, 0x2222_0000].into_iter();
        let live = 0x1111_46E0;
        // First draw gives 0x000046e0 (>= 256, fine) — make it "live" too by the predicate.
        let spi = l
            .derive(
                0xD456_0CA1,
                || draws.next().unwrap_or(0),
                |s| s == live || s == 0x0000_46E0,
                8,
            )
            .unwrap();
        assert_eq!(spi, 0x2222_46E0);
    }

    #[test]
    fn derive_rejects_reserved_result() {
        // tag_len 3 at offset 1 leaves only the top byte random; draw 0 and tag < 256 cannot occur,
        // so use a 1-byte tag at the end: random 0 gives the tag value alone (< 256).
        let l = Layout {
            tag_len: 1,
            spi_offset: 3,
            digest_offset: 0,
        };
        let mut n = 0u32;
        let spi = l
            .derive(
                0xD456_0CA1,
                || {
                    n += 1;
                    if n < 3 {
                        0
                    } else {
                        0x0100_0000
                    }
                },
                |_| false,
                8,
            )
            .unwrap();
        assert_eq!(spi, 0x0100_0046);
        assert!(matches!(
            l.derive(0xD456_0CA1, || 0, |_| false, 4),
            Err(SpiError::Exhausted(4))
        ));
    }

    #[test]
    fn fully_derived_collision_is_an_error() {
        let l = Layout {
            tag_len: 4,
            spi_offset: 0,
            digest_offset: 0,
        };
        let spi = l.derive_with(0xD456_0CA1, 0);
        assert_eq!(l.derive(0xD456_0CA1, || 0, |_| false, 1).unwrap(), spi);
        let err = l.derive(0xD456_0CA1, || 0, |s| s == spi, 1).unwrap_err();
        assert!(err.to_string().contains("already live"), "{err}");
    }

    #[test]
    fn parses_spi_text() {
        assert_eq!(parse_spi("0xD4560CA1").unwrap(), 0xD456_0CA1);
        assert_eq!(parse_spi("256").unwrap(), 256);
        assert!(parse_spi("0xZZ").is_err());
    }

    #[test]
    fn allocator_avoids_live_spis_and_counts() {
        let mut a = SpiAllocator::new(Layout::default()).unwrap();
        assert!(a.reserve(0x1234_5678));
        assert!(!a.reserve(0x1234_5678), "already live");
        let l = Layout::default();
        for random in [0xAAAA_0000, 0x1111_0000] {
            assert!(a.reserve(l.derive_with(0xD456_0CA1, random)));
        }
        // The first two draws give live SPIs, the third is usable.
        let mut draws = [0xAAAA_0000u32, 0x1111_0000, 0xBBBB_0000].into_iter();
        let got = a
            .allocate(0xD456_0CA1, || draws.next().unwrap_or(0xCCCC_0000))
            .unwrap();
        assert_eq!(got, l.derive_with(0xD456_0CA1, 0xBBBB_0000));
        assert!(a.is_live(got));
        assert_eq!(a.stats.derived, 1);
        assert_eq!(a.stats.redraws, 2);
        a.release(got);
        assert!(!a.is_live(got));
    }

    #[test]
    fn allocator_refuses_fully_derived_collision_and_counts_it() {
        let full = Layout {
            tag_len: 4,
            spi_offset: 0,
            digest_offset: 0,
        };
        let mut a = SpiAllocator::new(full).unwrap();
        let spi = a.allocate(7, || 0).unwrap();
        assert_eq!(spi, full.derive_with(7, 0));
        let e = a.allocate(7, || 0).unwrap_err();
        assert!(matches!(
            e,
            SpiError::FullyDerivedCollision {
                why: "already live",
                ..
            }
        ));
        assert_eq!(a.stats.refused, 1);
        assert!(e.to_string().contains("fully derived"));
    }
}
