//! The drop capture's file format: pcapng through the `pcap-file` crate.
//! One Interface Description Block per side, named after the data
//! interface (interface id = `Side as u32`, so tshark shows which side a
//! frame came in on), and one Enhanced Packet Block per frame whose comment
//! (`opt_comment`) is the drop reason's metric label.

use crate::router::stats::{DropReason, Side};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, PcapError};
use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

/// `if_tsresol` = 9: pcap-file writes timestamps in nanoseconds.
const TS_RESOL_NANOS: u8 = 9;

/// Counts the bytes that pass through to `W`.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad4(n: usize) -> u64 {
    (n as u64).div_ceil(4) * 4
}

fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        e => io::Error::other(e.to_string()),
    }
}

/// Size of the Enhanced Packet Block for `data_len` captured bytes and a
/// `comment_len`-byte comment: header, fixed fields, padded data, the
/// comment option, end of options, trailing length.
pub fn block_len(data_len: usize, comment_len: usize) -> u64 {
    12 + 20 + pad4(data_len) + 4 + pad4(comment_len) + 4
}

/// A pcapng stream of dropped frames.
pub struct DropWriter<W: Write> {
    out: PcapNgWriter<Counted<W>>,
    snap_len: u32,
}

impl<W: Write> DropWriter<W> {
    /// Writes the section header and one interface per side (`names`:
    /// inside, outside), each with `snap_len`.
    pub fn new(out: W, names: [&str; 2], snap_len: u32) -> io::Result<Self> {
        let counted = Counted {
            inner: out,
            bytes: 0,
        };
        let mut out = PcapNgWriter::new(counted).map_err(io_error)?;
        for name in names {
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: snap_len,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(name.to_string())),
                    InterfaceDescriptionOption::IfTsResol(TS_RESOL_NANOS),
                ],
            };
            out.write_pcapng_block(idb).map_err(io_error)?;
        }
        Ok(DropWriter { out, snap_len })
    }

    /// Bytes written so far (headers included).
    pub fn bytes(&self) -> u64 {
        self.out.get_ref().bytes
    }

    /// The snap length the file's interfaces declare; longer frames are cut to it.
    pub fn snap_len(&self) -> u32 {
        self.snap_len
    }

    /// Bytes the file would have after writing this frame (cut to the file's snap length).
    pub fn bytes_after(&self, data: &[u8], reason: DropReason) -> u64 {
        let kept = data.len().min(self.snap_len as usize);
        self.bytes()
            .saturating_add(block_len(kept, reason.label().len()))
    }

    /// Writes one dropped frame: received on `side` at `at` (since the Unix
    /// epoch), `orig_len` bytes long on the wire, `data` its first bytes.
    pub fn write(
        &mut self,
        side: Side,
        reason: DropReason,
        at: Duration,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let kept = data.get(..self.snap_len as usize).unwrap_or(data);
        let epb = EnhancedPacketBlock {
            interface_id: side as u32,
            timestamp: at,
            original_len: orig_len.max(kept.len() as u32),
            data: Cow::Borrowed(kept),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(reason.label()))],
        };
        self.out.write_pcapng_block(epb).map_err(io_error)?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.get_mut().flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out.into_inner().inner
    }
}
