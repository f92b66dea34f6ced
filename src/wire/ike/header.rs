//! The fixed IKE header (RFC 7296 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::cursor::Writer;
use super::{ExchangeType, PayloadIter, PayloadType, HEADER_LEN};
use crate::wire::{Result, WireError};

/// Major version written by [`HeaderRepr::emit`].
pub const MAJOR_VERSION: u8 = 2;

/// Header flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Set by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// "Can speak a higher major version"; IKEv2 implementations send 0.
    pub const VERSION: u8 = 0x10;
    /// Set in responses (same message ID as the request).
    pub const RESPONSE: u8 = 0x20;

    /// The flags of a message from the original initiator or responder,
    /// as a request or a response.
    pub fn new(initiator: bool, response: bool) -> Flags {
        let mut f = 0;
        if initiator {
            f |= Self::INITIATOR;
        }
        if response {
            f |= Self::RESPONSE;
        }
        Flags(f)
    }
    /// The sender is the original initiator.
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }
    /// The message is a response.
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
    /// The version bit is set.
    pub fn version(self) -> bool {
        self.0 & Self::VERSION != 0
    }
}

/// Checked view of the 28-byte header and the message up to its Length field.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buf: T,
    len: usize,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks `buf >= 28` and `28 <= length field <= buf.len()`; trailing
    /// bytes beyond the length are ignored. The version is not checked here:
    /// the protocol core must read it to answer INVALID_MAJOR_VERSION.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let length = b
            .get(24..HEADER_LEN)
            .and_then(|f| <[u8; 4]>::try_from(f).ok())
            .map(u32::from_be_bytes)
            .ok_or(WireError::Truncated)?;
        let len = usize::try_from(length).map_err(|_| WireError::Truncated)?;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Header { buf, len })
    }

    /// `N` bytes at `at` of the checked header (zeros cannot happen after the check).
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        self.buf
            .as_ref()
            .get(at..)
            .and_then(|b| b.first_chunk::<N>())
            .copied()
            .unwrap_or([0; N])
    }

    /// Initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        u64::from_be_bytes(self.field(0))
    }
    /// Responder's SPI (0 in the first IKE_SA_INIT request).
    pub fn spi_r(&self) -> u64 {
        u64::from_be_bytes(self.field(8))
    }
    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.field::<1>(16)[0])
    }
    /// Major version (2 for IKEv2).
    pub fn major_version(&self) -> u8 {
        self.field::<1>(17)[0] >> 4
    }
    /// Minor version (0).
    pub fn minor_version(&self) -> u8 {
        self.field::<1>(17)[0] & 0x0f
    }
    /// Exchange type.
    pub fn exchange(&self) -> ExchangeType {
        ExchangeType(self.field::<1>(18)[0])
    }
    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.field::<1>(19)[0])
    }
    /// Message ID.
    pub fn message_id(&self) -> u32 {
        u32::from_be_bytes(self.field(20))
    }
    /// Length field: the whole message, header included.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.field(24))
    }
    /// The whole message (exactly `length` bytes).
    pub fn message(&self) -> &[u8] {
        self.buf.as_ref().get(..self.len).unwrap_or_default()
    }
    /// The payload chain after the header.
    pub fn payload_bytes(&self) -> &[u8] {
        self.message().get(HEADER_LEN..).unwrap_or_default()
    }
    /// Payload chain starting after the header.
    pub fn payloads(&self) -> PayloadIter<'_> {
        PayloadIter::new(self.next_payload(), self.payload_bytes())
    }
}

/// Owned description of a header for emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI.
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Whole message length, header included.
    pub length: u32,
}

impl HeaderRepr {
    /// Reads every field of a checked header (the version is dropped:
    /// [`HeaderRepr::emit`] always writes 2.0).
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> HeaderRepr {
        HeaderRepr {
            spi_i: h.spi_i(),
            spi_r: h.spi_r(),
            next_payload: h.next_payload(),
            exchange: h.exchange(),
            flags: h.flags(),
            message_id: h.message_id(),
            length: h.length(),
        }
    }

    /// Writes 28 bytes (version 2.0); `Err(Truncated)` if `out` is shorter.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let mut w = Writer::new(out.get_mut(..HEADER_LEN).ok_or(WireError::Truncated)?);
        w.put(&self.spi_i.to_be_bytes())?;
        w.put(&self.spi_r.to_be_bytes())?;
        w.put(&[
            self.next_payload.0,
            MAJOR_VERSION << 4,
            self.exchange.0,
            self.flags.0,
        ])?;
        w.put(&self.message_id.to_be_bytes())?;
        w.put(&self.length.to_be_bytes())
    }
}
