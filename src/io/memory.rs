//! In-memory frame I/O for tests without devices or root (the role of
//! smoltcp's `phy::Loopback`): a [`MemoryRx`] is fed frames by its
//! [`MemoryFeed`], a [`MemoryTx`] records what was sent.

use super::offload::Offload;
use super::{FrameRx, FrameTx, RxBatch, RxFlags};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

type Queue = Arc<(Mutex<VecDeque<(Vec<u8>, RxFlags)>>, Condvar)>;

/// Receive side of an in-memory link.
pub struct MemoryRx {
    queue: Queue,
}

/// Pushes frames into a [`MemoryRx`] from another thread.
#[derive(Clone)]
pub struct MemoryFeed {
    queue: Queue,
}

/// A receive queue and the handle that feeds it.
pub fn rx_pair() -> (MemoryRx, MemoryFeed) {
    let queue: Queue = Arc::default();
    (
        MemoryRx {
            queue: queue.clone(),
        },
        MemoryFeed { queue },
    )
}

impl MemoryFeed {
    /// Queues one frame as the kernel would report it.
    pub fn push(&self, frame: Vec<u8>, flags: RxFlags) {
        self.queue.0.lock().push_back((frame, flags));
        self.queue.1.notify_one();
    }
}

impl FrameRx for MemoryRx {
    fn recv_batch(&mut self, batch: &mut RxBatch, timeout_ms: i32) -> io::Result<usize> {
        let mut q = self.queue.0.lock();
        if q.is_empty() {
            let wait = Duration::from_millis(u64::try_from(timeout_ms.max(0)).unwrap_or(0));
            self.queue.1.wait_for(&mut q, wait);
        }
        let (bufs, lens, flags) = batch.parts_mut();
        let mut n = 0;
        for ((buf, len), fl) in bufs.iter_mut().zip(lens.iter_mut()).zip(flags.iter_mut()) {
            let Some((frame, f)) = q.pop_front() else {
                break;
            };
            let take = frame.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..take), frame.get(..take)) {
                dst.copy_from_slice(src);
            }
            *len = take;
            *fl = RxFlags {
                truncated: f.truncated || take < frame.len(),
                ..f
            };
            n += 1;
        }
        batch.set_len(n);
        Ok(n)
    }
}

/// A frame as sent, with its offload state.
pub type Sent = (Vec<u8>, Offload);

/// Send side of an in-memory link: every frame it accepted, in order.
#[derive(Clone, Default)]
pub struct MemoryTx {
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl MemoryTx {
    /// Takes what was sent so far.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock())
    }
}

impl FrameTx for MemoryTx {
    fn send_batch(&mut self, frames: &[(&[u8], Offload)]) -> io::Result<usize> {
        self.sent
            .lock()
            .extend(frames.iter().map(|(f, o)| (f.to_vec(), *o)));
        Ok(frames.len())
    }
}
