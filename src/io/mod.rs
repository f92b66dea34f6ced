//! Packet I/O backends behind two small traits: [`FrameRx`] (one receive
//! queue of one interface, possibly a fanout member) and [`FrameTx`] (a
//! thread-safe sender on one interface).
//!
//! Two Linux backends exist: [`afpacket`] (raw AF_PACKET via libc, batched
//! `recvmmsg`/`sendmmsg`, PACKET_IGNORE_OUTGOING, checksum-offload aware) and
//! [`pnet_link`] (pnet's datalink channel, one syscall pair per packet).

pub mod afpacket;
pub mod ethtool;
pub mod iface;
pub mod memory;
pub mod offload;
pub mod outer;
pub mod pnet_link;
pub mod route_watch;
pub mod sys;
pub mod tun;
pub mod udp_gso;

use offload::Offload;
use std::io;

/// Largest frame a receive buffer holds: a 64 KiB GSO/GRO super-frame plus
/// headers. Anything longer is reported as truncated, never silently cut.
pub const MAX_FRAME: usize = 65536 + 64;

/// A batch of received frames, reused across calls.
pub struct RxBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    flags: Vec<RxFlags>,
    count: usize,
}

/// Per-frame facts the kernel reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxFlags {
    /// The frame was longer than the buffer and was cut (MSG_TRUNC).
    pub truncated: bool,
    /// Pending checksum/segmentation work the kernel handed over with the
    /// frame (backends that carry offload metadata; plain otherwise).
    pub offload: Offload,
    /// The kernel's offload metadata could not be forwarded as it is.
    pub offload_unusable: bool,
    /// The kernel stripped an 802.1Q tag into metadata (TP_STATUS_VLAN_VALID):
    /// the frame was tagged even though the bytes show no tag.
    pub vlan: bool,
}

impl RxBatch {
    /// `n` buffers of `MAX_FRAME` bytes.
    pub fn new(n: usize) -> Self {
        RxBatch {
            bufs: (0..n).map(|_| vec![0; MAX_FRAME]).collect(),
            lens: vec![0; n],
            flags: vec![RxFlags::default(); n],
            count: 0,
        }
    }
    /// Capacity in frames.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }
    /// Frames filled by the last receive.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True when the last receive returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Frame `i` (mutable, for in-place rewriting) and its flags.
    pub fn frame_mut(&mut self, i: usize) -> Option<(&mut [u8], RxFlags)> {
        let len = *self.lens.get(i)?;
        let flags = *self.flags.get(i)?;
        self.bufs
            .get_mut(i)
            .map(|b| (&mut b[..len.min(MAX_FRAME)], flags))
    }
    /// What the kernel reported with frame `i`.
    pub fn flags(&self, i: usize) -> Option<RxFlags> {
        self.flags.get(i).copied().filter(|_| i < self.count)
    }
    /// Frame `i` as received (after in-place rewriting).
    pub fn frame(&self, i: usize) -> Option<&[u8]> {
        let len = *self.lens.get(i)?;
        self.bufs.get(i).map(|b| &b[..len.min(MAX_FRAME)])
    }
    /// For backends: buffers, lengths and flags to fill.
    pub(crate) fn parts_mut(&mut self) -> (&mut [Vec<u8>], &mut [usize], &mut [RxFlags]) {
        (&mut self.bufs, &mut self.lens, &mut self.flags)
    }
    /// For backends: sets how many frames were filled.
    pub(crate) fn set_len(&mut self, n: usize) {
        self.count = n.min(self.bufs.len());
    }
}

/// One receive queue.
pub trait FrameRx: Send {
    /// Waits up to `timeout_ms` for frames and fills `batch`; returns the count (0 on timeout).
    fn recv_batch(&mut self, batch: &mut RxBatch, timeout_ms: i32) -> io::Result<usize>;
}

/// A sender on one interface, owned by one thread.
pub trait FrameTx: Send {
    /// Sends every frame with its offload state; returns how many the kernel
    /// accepted. Only backends whose [`Backend::carries_offloads`] is true may
    /// be given frames whose offload state is not plain.
    fn send_batch(&mut self, frames: &[(&[u8], Offload)]) -> io::Result<usize>;
}

/// Opens queues and senders on named interfaces.
pub trait Backend: Send + Sync {
    /// A receive queue on `ifname` joined to fanout group `group`.
    fn open_rx(&self, ifname: &str, group: u16) -> io::Result<Box<dyn FrameRx>>;
    /// A sender on `ifname`.
    fn open_tx(&self, ifname: &str) -> io::Result<Box<dyn FrameTx>>;
    /// Name for logs and metrics.
    fn name(&self) -> &'static str;
    /// True when received frames report their offload state and sent frames
    /// can keep it (partial checksums, GSO super-frames).
    fn carries_offloads(&self) -> bool;
}
