//! One receive thread: reads a batch from its interface's fanout queue,
//! hands each frame to the forwarding policy (which rewrites it in place),
//! then sends the batch's output per interface with one call each.

use super::capture::Tap;
use super::forwarding::{Local, Transmit, Verdict};
use super::stats::{Counters, DropReason, Side};
use super::Shared;
use crate::daemon::stats::Publisher;
use crate::io::offload::Offload;
use crate::io::{FrameRx, FrameTx, RxBatch};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A receive thread's state.
pub struct Worker {
    side: Side,
    shared: Arc<Shared>,
    rx: Box<dyn FrameRx>,
    tx: [Box<dyn FrameTx>; 2],
    local: Local,
    tap: Tap,
    publisher: Publisher<Counters>,
}

impl Worker {
    /// A worker reading `side` through `rx` and sending through `tx` (inside, outside).
    pub fn new(
        side: Side,
        shared: Arc<Shared>,
        rx: Box<dyn FrameRx>,
        tx: [Box<dyn FrameTx>; 2],
        publisher: Publisher<Counters>,
    ) -> Self {
        let local = shared.fwd.local(shared.receive_threads(), shared.now());
        Worker {
            side,
            shared,
            rx,
            tx,
            local,
            tap: Tap::default(),
            publisher,
        }
    }

    /// Runs until shutdown is requested.
    pub fn run(mut self, batch_size: usize) {
        let mut batch = RxBatch::new(batch_size);
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(batch_size);
        while !self.shared.shutdown.load(Ordering::Relaxed) {
            let n = match self.rx.recv_batch(&mut batch, 100) {
                Ok(n) => n,
                Err(e) => {
                    crate::warn_limited!(side = self.side.label(), error = %e, "receive failed");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    0
                }
            };
            verdicts.clear();
            let now = self.shared.now();
            for i in 0..n {
                let Some((frame, flags)) = batch.frame_mut(i) else {
                    continue;
                };
                let v = self
                    .shared
                    .fwd
                    .handle(self.side, frame, flags, now, &mut self.local);
                if let Verdict::Drop(reason) = v {
                    self.shared.capture.offer(
                        &mut self.tap,
                        self.side,
                        reason,
                        frame,
                        now,
                        &mut self.local.counters,
                    );
                }
                verdicts.push(v);
            }
            send_batch(&mut self.tx, &mut self.local, Some((&batch, &verdicts)));
            // Publishing per batch would cost a lock and a copy per packet at low rates.
            self.publisher.maybe(&self.local.counters, now, n == 0);
        }
        self.publisher
            .publish(&self.local.counters, self.shared.now());
    }
}

/// Sends the frames of a received batch whose verdict is `Forward` (if
/// given) and the frames the policy queued in `local`, one call per
/// interface, counting what the kernel took and what it refused.
pub fn send_batch(
    tx: &mut [Box<dyn FrameTx>; 2],
    local: &mut Local,
    received: Option<(&RxBatch, &[Verdict])>,
) {
    for side in [Side::Inside, Side::Outside] {
        let mut out: Vec<(&[u8], Offload)> = Vec::new();
        if let Some((batch, verdicts)) = received {
            for (i, v) in verdicts.iter().enumerate() {
                if *v == Verdict::Forward(side) {
                    if let (Some(f), Some(fl)) = (batch.frame(i), batch.flags(i)) {
                        out.push((f, fl.offload));
                    }
                }
            }
        }
        out.extend(
            local
                .transmits
                .iter()
                .filter(|t| t.side == side)
                .map(|t: &Transmit| (t.frame.as_slice(), t.offload)),
        );
        send_counted(&mut tx[side as usize], side, &out, &mut local.counters);
    }
    local.transmits.clear();
}

/// Sends `out` on one interface and counts it.
pub fn send_counted(
    tx: &mut Box<dyn FrameTx>,
    side: Side,
    out: &[(&[u8], Offload)],
    c: &mut Counters,
) {
    if out.is_empty() {
        return;
    }
    let sent = tx.send_batch(out).unwrap_or(0).min(out.len());
    let si = side as usize;
    c.tx_packets[si] += sent as u64;
    c.tx_bytes[si] += out
        .iter()
        .take(sent)
        .map(|(f, _)| f.len() as u64)
        .sum::<u64>();
    for _ in sent..out.len() {
        c.count_drop(DropReason::TxError);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::memory::{rx_pair, MemoryTx};
    use crate::io::RxFlags;
    use crate::router::capture::config::CaptureConfig;
    use crate::router::config::RouterConfig;
    use crate::router::forwarding::{Forwarding, Interfaces};
    use crate::router::stats::CaptureResult;
    use crate::wire::arp::{Operation, Repr};
    use crate::wire::ethernet::{self, ethertype, Mac};
    use std::net::Ipv4Addr;

    /// The whole receive loop over in-memory links: an ARP request in, its
    /// reply out on the same side; a runt dropped and handed to the drop
    /// capture; shutdown stops the thread and publishes.
    #[test]
    fn worker_loop_runs_over_memory_links() {
        let cfg = RouterConfig::parse(
            "[inside]\ninterface = \"a\"\naddress = \"10.6.1.1/24\"\n\
             [outside]\ninterface = \"b\"\naddress = \"203.0.113.10/24\"\ngateway = \"203.0.113.1\"\n",
        )
        .unwrap();
        let me = Mac([2, 0, 0, 0, 1, 1]);
        let ifaces = Interfaces {
            macs: [me, Mac([2, 0, 0, 0, 1, 2])],
            mtus: [1500; 2],
        };
        let shared = Arc::new(Shared::new(
            Forwarding::new(&cfg, ifaces, 1).unwrap(),
            cfg.clone(),
            1,
            "memory",
        ));
        let file =
            std::env::temp_dir().join(format!("spimux-worker-{}.pcapng", std::process::id()));
        let capture = CaptureConfig {
            drops_file: file.to_str().unwrap().into(),
            ..CaptureConfig::default()
        };
        shared.capture.apply(&capture).unwrap();
        let (rx, feed) = rx_pair();
        let (tx_in, tx_out) = (MemoryTx::default(), MemoryTx::default());
        let w = Worker::new(
            Side::Inside,
            shared.clone(),
            Box::new(rx),
            [Box::new(tx_in.clone()), Box::new(tx_out.clone())],
            Publisher::new(&shared.stats),
        );
        let t = std::thread::spawn(move || w.run(8));
        let host = Mac([2, 0, 0, 0, 0, 2]);
        let mut f = vec![0u8; 42];
        ethernet::emit_header(&mut f, Mac::BROADCAST, host, ethertype::ARP).unwrap();
        Repr {
            operation: Operation::Request,
            sender_mac: host,
            sender_ip: Ipv4Addr::new(10, 6, 1, 2),
            target_mac: Mac::ZERO,
            target_ip: Ipv4Addr::new(10, 6, 1, 1),
        }
        .emit(&mut f[14..])
        .unwrap();
        feed.push(f, RxFlags::default());
        feed.push(vec![1, 2, 3], RxFlags::default());
        let mut sent = Vec::new();
        for _ in 0..500 {
            sent.extend(tx_in.take());
            if !sent.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        shared.shutdown.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert_eq!(sent.len(), 1, "one ARP reply on the inside");
        let reply = ethernet::Frame::new_checked(&sent[0].0[..]).unwrap();
        assert_eq!((reply.dst(), reply.src()), (host, me));
        assert!(tx_out.take().is_empty());
        let c = shared.stats.total();
        assert_eq!(c.rx_packets[0], 2);
        assert_eq!(c.tx_packets[0], 1);
        assert_eq!(c.drops[DropReason::EthTruncated.index()], 1);
        assert_eq!(shared.capture.write_pending(), 1, "the runt was queued");
        let written = shared.capture.writer_counts()[CaptureResult::Written as usize];
        let size = std::fs::metadata(&file).map(|m| m.len());
        let _ = std::fs::remove_file(&file);
        assert_eq!(written, 1);
        assert_eq!(size.ok(), Some(shared.capture.file_bytes()));
    }
}
