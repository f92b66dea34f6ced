//! ESP header view: SPI outside the reserved range, sequence number, the
//! opaque rest.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::esp::{Packet, HEADER_LEN, MIN_SPI};
use spimux::wire::WireError;

fuzz_target!(|data: &[u8]| {
    match Packet::new_checked(data) {
        Ok(p) => {
            assert!(p.spi() >= MIN_SPI);
            assert_eq!(p.spi().to_be_bytes(), data[..4]);
            assert_eq!(p.seq().to_be_bytes(), data[4..8]);
            assert_eq!(p.payload(), &data[HEADER_LEN..]);
        }
        Err(WireError::Truncated) => assert!(data.len() < HEADER_LEN),
        Err(WireError::Malformed) => {
            assert!(u32::from_be_bytes([data[0], data[1], data[2], data[3]]) < MIN_SPI)
        }
    }
});
