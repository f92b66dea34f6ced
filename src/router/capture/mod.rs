//! Drop capture: an opt-in, rate-limited copy of the frames the router
//! drops, written to a pcapng file with the drop reason as each packet's
//! comment.
//!
//! The receive threads never block on it. With capture off a dropped frame
//! costs one relaxed load (`generation` is 0); forwarded frames cost
//! nothing. With capture on, a thread whose share of the token bucket has a
//! token copies the frame's first `snap_len` bytes into a bounded queue
//! (`try_send`; a full queue is counted, never waited for), and the writer
//! thread writes the file. Settings change at runtime through
//! [`Capture::apply`], which only the writer thread and other `apply` calls
//! contend with.

pub mod config;
pub mod pcapng;
#[cfg(test)]
mod tests;

use crate::daemon::OpenError;
use crate::nat::{ConfigError, Millis};
use crate::rate_limit::TokenBucket;
use crate::router::stats::{CaptureResult, Counters, DropReason, Side};
use config::{CaptureConfig, MAX_QUEUE_LEN};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use pcapng::DropWriter;
use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Records the writer handles per hold of the state lock, so an `apply`
/// waits for at most this many writes.
const WRITE_BATCH: usize = 256;

/// One dropped frame on its way to the writer.
#[derive(Debug)]
struct Record {
    side: Side,
    reason: DropReason,
    at: SystemTime,
    orig_len: u32,
    data: Vec<u8>,
}

/// Why the current file takes no more frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Full,
    WriteError,
}

/// The open capture file.
struct Sink {
    path: String,
    writer: DropWriter<BufWriter<File>>,
    max_bytes: u64,
    stopped: Option<Stop>,
}

/// What `apply` and the writer thread share under the lock.
struct State {
    sink: Option<Sink>,
    last_generation: u32,
}

/// Why [`Capture::apply`] refused a configuration (the previous one stays).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A field is out of range.
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    /// The file could not be created.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// A receive thread's view of the capture: its share of the token bucket.
#[derive(Debug)]
pub struct Tap {
    bucket: TokenBucket,
    generation: u32,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            bucket: TokenBucket::full(0, 0),
            generation: 0,
        }
    }
}

/// The router's drop capture, shared by every thread.
pub struct Capture {
    /// 0 = off; otherwise changes on every `apply`, so each thread refills
    /// its bucket with the new burst.
    generation: AtomicU32,
    /// Per-thread share of `max_per_sec` and `burst`.
    rate: AtomicU32,
    burst: AtomicU32,
    snap_len: AtomicU32,
    queue_len: AtomicU32,
    threads: u32,
    names: [String; 2],
    /// Created when capture is first turned on; never replaced, so the
    /// receive threads need no lock to reach it.
    queue: OnceLock<(Sender<Record>, Receiver<Record>)>,
    state: Mutex<State>,
    /// The writer's results, by `CaptureResult as usize` (the receive
    /// threads count theirs in their own `Counters`).
    written: [AtomicU64; CaptureResult::ALL.len()],
    file_bytes: AtomicU64,
}

fn share(v: u32, threads: u32) -> u32 {
    v.div_ceil(threads.max(1)).max(1)
}

fn open(path: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Frames carry user data: owner-only, and never through a planted symlink.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

impl Capture {
    /// Capture off, for `threads` receive threads on the interfaces `names`
    /// (inside, outside), which name the file's two interfaces.
    pub fn new(names: [String; 2], threads: usize) -> Self {
        let d = CaptureConfig::default();
        let threads = u32::try_from(threads.max(1)).unwrap_or(u32::MAX);
        Capture {
            generation: AtomicU32::new(0),
            rate: AtomicU32::new(share(d.max_per_sec, threads)),
            burst: AtomicU32::new(share(d.burst, threads)),
            snap_len: AtomicU32::new(d.snap_len),
            queue_len: AtomicU32::new(d.queue_len),
            threads,
            names,
            queue: OnceLock::new(),
            state: Mutex::new(State {
                sink: None,
                last_generation: 0,
            }),
            written: Default::default(),
            file_bytes: AtomicU64::new(0),
        }
    }

    /// Offers a frame the policy dropped (`reason`) on `side`. Costs one
    /// relaxed load while capture is off; never blocks.
    #[inline]
    pub fn offer(
        &self,
        tap: &mut Tap,
        side: Side,
        reason: DropReason,
        frame: &[u8],
        now: Millis,
        counters: &mut Counters,
    ) {
        let generation = self.generation.load(Ordering::Relaxed);
        if generation != 0 {
            self.offer_on(tap, generation, (side, reason), frame, now, counters);
        }
    }

    #[cold]
    fn offer_on(
        &self,
        tap: &mut Tap,
        generation: u32,
        (side, reason): (Side, DropReason),
        frame: &[u8],
        now: Millis,
        counters: &mut Counters,
    ) {
        let (rate, burst) = (
            self.rate.load(Ordering::Relaxed),
            self.burst.load(Ordering::Relaxed),
        );
        if tap.generation != generation {
            tap.generation = generation;
            tap.bucket = TokenBucket::full(burst, now);
        }
        if !tap.bucket.take(rate, burst, now) {
            counters.capture[CaptureResult::RateLimited as usize] += 1;
            return;
        }
        let Some((tx, _)) = self.queue.get() else {
            return;
        };
        if tx.len() >= self.queue_len.load(Ordering::Relaxed) as usize {
            counters.capture[CaptureResult::QueueFull as usize] += 1;
            return;
        }
        let snap = self.snap_len.load(Ordering::Relaxed) as usize;
        let record = Record {
            side,
            reason,
            at: SystemTime::now(),
            orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data: frame.get(..snap).unwrap_or(frame).to_vec(),
        };
        if tx.try_send(record).is_err() {
            counters.capture[CaptureResult::QueueFull as usize] += 1;
        }
    }

    /// Applies `cfg` at runtime, safe while the receive and writer threads
    /// run: an empty `drops_file` closes the file (capture off); a new path
    /// creates (truncates) that file and closes the old one; the same path
    /// keeps the open file (a raised `max_file_bytes` resumes a file that
    /// was full). Rate, burst, snap length and queue length apply to the
    /// next dropped frame; `snap_len` is capped at the open file's. On
    /// error nothing changes.
    pub fn apply(&self, cfg: &CaptureConfig) -> Result<(), ApplyError> {
        cfg.validate()?;
        let mut st = self.state.lock();
        if !cfg.enabled() {
            if let Some(mut old) = st.sink.take() {
                let _ = old.writer.flush();
                tracing::info!(file = old.path, "drop capture off");
            }
            self.generation.store(0, Ordering::Relaxed);
            self.file_bytes.store(0, Ordering::Relaxed);
            self.set_limits(cfg);
            return Ok(());
        }
        let reuse = st
            .sink
            .as_ref()
            .is_some_and(|s| s.path == cfg.drops_file && s.stopped != Some(Stop::WriteError));
        if reuse {
            if let Some(s) = st.sink.as_mut() {
                s.max_bytes = cfg.max_file_bytes;
                if s.stopped == Some(Stop::Full) && s.writer.bytes() < s.max_bytes {
                    s.stopped = None;
                    tracing::info!(file = s.path, "drop capture resumed");
                }
            }
        } else {
            let sink = self.create(cfg)?;
            if let Some(mut old) = st.sink.replace(sink) {
                let _ = old.writer.flush();
            }
            tracing::info!(file = cfg.drops_file, "drop capture on");
        }
        self.queue
            .get_or_init(|| channel::bounded(MAX_QUEUE_LEN as usize));
        self.set_limits(cfg);
        let next = st.last_generation.wrapping_add(1).max(1);
        st.last_generation = next;
        let live = st.sink.as_ref().is_some_and(|s| s.stopped.is_none());
        if let Some(s) = st.sink.as_ref() {
            self.file_bytes.store(s.writer.bytes(), Ordering::Relaxed);
        }
        self.generation
            .store(if live { next } else { 0 }, Ordering::Relaxed);
        Ok(())
    }

    fn set_limits(&self, cfg: &CaptureConfig) {
        self.rate
            .store(share(cfg.max_per_sec, self.threads), Ordering::Relaxed);
        self.burst
            .store(share(cfg.burst, self.threads), Ordering::Relaxed);
        self.snap_len.store(cfg.snap_len, Ordering::Relaxed);
        self.queue_len.store(cfg.queue_len, Ordering::Relaxed);
    }

    fn create(&self, cfg: &CaptureConfig) -> Result<Sink, OpenError> {
        let what = || format!("capture.drops_file {}", cfg.drops_file);
        let wrap = |source| OpenError {
            what: what(),
            source,
        };
        let file = open(&cfg.drops_file).map_err(wrap)?;
        let names = [self.names[0].as_str(), self.names[1].as_str()];
        let writer = DropWriter::new(BufWriter::with_capacity(1 << 16, file), names, cfg.snap_len)
            .map_err(wrap)?;
        Ok(Sink {
            path: cfg.drops_file.clone(),
            writer,
            max_bytes: cfg.max_file_bytes,
            stopped: None,
        })
    }

    /// The writer thread: writes queued frames until `shutdown`, then
    /// writes what is still queued and flushes.
    pub fn run_writer(&self, shutdown: &AtomicBool) {
        let tick = Duration::from_millis(100);
        while !shutdown.load(Ordering::Relaxed) {
            match self.queue.get() {
                Some((_, rx)) => match rx.recv_timeout(tick) {
                    Ok(first) => self.write_batch(Some(first), rx),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
                },
                None => std::thread::sleep(tick),
            }
        }
        while self.write_pending() > 0 {}
    }

    /// Writes up to one batch of queued frames now; returns how many it took.
    pub fn write_pending(&self) -> usize {
        match self.queue.get() {
            Some((_, rx)) if !rx.is_empty() => {
                let n = rx.len().min(WRITE_BATCH);
                self.write_batch(None, rx);
                n
            }
            _ => 0,
        }
    }

    fn write_batch(&self, first: Option<Record>, rx: &Receiver<Record>) {
        let mut st = self.state.lock();
        let rest = std::iter::from_fn(|| rx.try_recv().ok());
        for r in first.into_iter().chain(rest).take(WRITE_BATCH) {
            let result = self.write_one(&mut st, r);
            self.written[result as usize].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(s) = st.sink.as_mut() {
            // Flushed whenever the queue runs dry, so the file can be read while capturing.
            if rx.is_empty() && s.stopped != Some(Stop::WriteError) {
                if let Err(e) = s.writer.flush() {
                    self.stop(s, Stop::WriteError, &e.to_string());
                }
            }
            self.file_bytes.store(s.writer.bytes(), Ordering::Relaxed);
        }
    }

    fn write_one(&self, st: &mut State, r: Record) -> CaptureResult {
        let Some(s) = st.sink.as_mut() else {
            return CaptureResult::Closed;
        };
        match s.stopped {
            Some(Stop::Full) => return CaptureResult::FileFull,
            Some(Stop::WriteError) => return CaptureResult::WriteError,
            None => {}
        }
        if s.writer.bytes_after(&r.data, r.reason) > s.max_bytes {
            self.stop(s, Stop::Full, "the file reached capture.max_file_bytes");
            return CaptureResult::FileFull;
        }
        let at =
            r.at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
        match s.writer.write(r.side, r.reason, at, r.orig_len, &r.data) {
            Ok(()) => CaptureResult::Written,
            Err(e) => {
                self.stop(s, Stop::WriteError, &e.to_string());
                CaptureResult::WriteError
            }
        }
    }

    /// Stops taking frames into `s` (logged once: the threads stop offering).
    fn stop(&self, s: &mut Sink, why: Stop, detail: &str) {
        s.stopped = Some(why);
        self.generation.store(0, Ordering::Relaxed);
        let _ = s.writer.flush();
        tracing::warn!(file = s.path, reason = detail, "drop capture stopped");
    }

    /// True while frames are being captured.
    pub fn is_active(&self) -> bool {
        self.generation.load(Ordering::Relaxed) != 0
    }

    /// Size of the current file.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes.load(Ordering::Relaxed)
    }

    /// The writer's counts by `CaptureResult as usize` (written, write
    /// error, file full, closed); the receive threads count the others.
    pub fn writer_counts(&self) -> [u64; CaptureResult::ALL.len()] {
        std::array::from_fn(|i| self.written[i].load(Ordering::Relaxed))
    }
}
