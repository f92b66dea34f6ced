use super::config::CaptureConfig;
use super::pcapng::{block_len, DropWriter};
use super::*;
use crate::nat::NatDrop;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::path::PathBuf;

/// A packet read back: interface id, comment, captured bytes, original length.
#[derive(Debug, PartialEq, Eq)]
struct Packet {
    iface: u32,
    comment: String,
    data: Vec<u8>,
    orig_len: u32,
}

/// Interface names (with their ts resolution) and packets of a pcapng stream.
fn read_back(bytes: &[u8]) -> (Vec<(String, u8, u32)>, Vec<Packet>) {
    let mut r = PcapNgReader::new(bytes).unwrap();
    let (mut ifaces, mut packets) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::InterfaceDescription(idb) => {
                let mut name = String::new();
                let mut resol = 6;
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfName(n) => name = n.to_string(),
                        InterfaceDescriptionOption::IfTsResol(t) => resol = *t,
                        _ => {}
                    }
                }
                ifaces.push((name, resol, idb.snaplen));
            }
            Block::EnhancedPacket(epb) => {
                let comment = epb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                packets.push(Packet {
                    iface: epb.interface_id,
                    comment,
                    data: epb.data.to_vec(),
                    orig_len: epb.original_len,
                });
            }
            _ => {}
        }
    }
    (ifaces, packets)
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_add(tag)).collect()
}

#[test]
fn writer_records_reason_as_comment_and_side_as_interface() {
    let mut w = DropWriter::new(Vec::new(), ["lan0", "wan0"], 128).unwrap();
    let at = Duration::from_millis(1_700_000_000_123);
    let cases = [
        (Side::Inside, DropReason::TtlExceeded, frame(60, 1)),
        (
            Side::Outside,
            DropReason::Nat(NatDrop::NoMapping),
            frame(90, 2),
        ),
        (Side::Inside, DropReason::IpBadChecksum, frame(300, 3)),
    ];
    for (side, reason, f) in &cases {
        let before = w.bytes();
        assert_eq!(
            w.bytes_after(f, *reason),
            before + block_len(f.len().min(128), reason.label().len())
        );
        w.write(*side, *reason, at, f.len() as u32, f).unwrap();
        assert_eq!(
            w.bytes() - before,
            block_len(f.len().min(128), reason.label().len()),
            "block size predicted exactly"
        );
    }
    let total = w.bytes();
    let bytes = w.into_inner();
    assert_eq!(bytes.len() as u64, total);
    let (ifaces, packets) = read_back(&bytes);
    assert_eq!(
        ifaces,
        [("lan0".to_string(), 9, 128), ("wan0".to_string(), 9, 128)]
    );
    let got: Vec<(u32, &str, usize, u32)> = packets
        .iter()
        .map(|p| (p.iface, p.comment.as_str(), p.data.len(), p.orig_len))
        .collect();
    assert_eq!(
        got,
        [
            (0, "ttl_exceeded", 60, 60),
            (1, "no_mapping", 90, 90),
            (0, "ip_bad_checksum", 128, 300),
        ]
    );
    assert_eq!(packets[2].data, cases[2].2[..128]);
}

/// A fresh path in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        TempFile(std::env::temp_dir().join(format!(
            "spimux-capture-{}-{nanos:x}-{name}.pcapng",
            std::process::id()
        )))
    }

    fn cfg(&self) -> CaptureConfig {
        CaptureConfig {
            drops_file: self.0.to_str().unwrap().to_string(),
            ..CaptureConfig::default()
        }
    }

    fn packets(&self) -> Vec<Packet> {
        read_back(&std::fs::read(&self.0).unwrap()).1
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn capture() -> Capture {
    Capture::new(["lan0".into(), "wan0".into()], 1)
}

/// A one-thread capture turned on into a new file `name`, with the
/// defaults changed by `set`.
fn started(name: &str, set: impl FnOnce(&mut CaptureConfig)) -> (TempFile, Capture, Tap) {
    let f = TempFile::new(name);
    let c = capture();
    let mut cfg = f.cfg();
    set(&mut cfg);
    c.apply(&cfg).unwrap();
    (f, c, Tap::default())
}

/// Lets the writer take everything queued.
fn drain(c: &Capture) {
    while c.write_pending() > 0 {}
}

/// Offers `n` drops of `reason` at `now` through one thread's tap.
fn offer_n(c: &Capture, tap: &mut Tap, n: usize, reason: DropReason, now: Millis) -> Counters {
    let mut counters = Counters::default();
    for i in 0..n {
        c.offer(
            tap,
            Side::Inside,
            reason,
            &frame(80, i as u8),
            now,
            &mut counters,
        );
    }
    counters
}

fn count(c: &Capture, local: &Counters, r: CaptureResult) -> u64 {
    local.capture[r as usize] + c.writer_counts()[r as usize]
}

#[test]
fn off_by_default_costs_nothing_and_counts_nothing() {
    let c = capture();
    let mut tap = Tap::default();
    let local = offer_n(&c, &mut tap, 5, DropReason::Fragment, 0);
    assert!(!c.is_active());
    assert_eq!(local.capture, [0; CaptureResult::ALL.len()]);
    assert_eq!(c.write_pending(), 0);
    assert_eq!(c.writer_counts(), [0; CaptureResult::ALL.len()]);
}

#[test]
fn apply_turns_on_changes_rate_and_turns_off() {
    let f = TempFile::new("apply");
    let c = capture();
    let mut tap = Tap::default();
    // On: the burst (100) passes, the rest is rate limited.
    c.apply(&f.cfg()).unwrap();
    assert!(c.is_active());
    let local = offer_n(&c, &mut tap, 120, DropReason::TtlExceeded, 1000);
    drain(&c);
    assert_eq!(count(&c, &local, CaptureResult::Written), 100);
    assert_eq!(count(&c, &local, CaptureResult::RateLimited), 20);
    assert_eq!(f.packets().len(), 100, "flushed when the queue ran dry");
    // Rate changed on the same file: kept open (not truncated), new bucket.
    let slow = CaptureConfig {
        max_per_sec: 2,
        burst: 1,
        ..f.cfg()
    };
    c.apply(&slow).unwrap();
    let local = offer_n(&c, &mut tap, 5, DropReason::BadSource, 1000);
    let later = offer_n(&c, &mut tap, 5, DropReason::BadSource, 1500);
    drain(&c);
    assert_eq!(local.capture[CaptureResult::RateLimited as usize], 4);
    assert_eq!(
        later.capture[CaptureResult::RateLimited as usize],
        4,
        "2/s refills one in 500 ms"
    );
    let packets = f.packets();
    assert_eq!(packets.len(), 102);
    assert_eq!(packets[0].comment, "ttl_exceeded");
    assert_eq!(packets[101].comment, "bad_source");
    // Off: nothing more is offered; the file stays complete.
    c.apply(&CaptureConfig::default()).unwrap();
    assert!(!c.is_active());
    let local = offer_n(&c, &mut tap, 5, DropReason::BadSource, 9000);
    assert_eq!(local.capture, [0; CaptureResult::ALL.len()]);
    assert_eq!(c.write_pending(), 0);
    assert_eq!(f.packets().len(), 102);
    assert_eq!(c.file_bytes(), 0);
}

#[test]
fn apply_to_a_new_path_switches_files_and_a_bad_path_changes_nothing() {
    let (a, b) = (TempFile::new("a"), TempFile::new("b"));
    let c = capture();
    let mut tap = Tap::default();
    c.apply(&a.cfg()).unwrap();
    offer_n(&c, &mut tap, 2, DropReason::NoRoute, 0);
    drain(&c);
    c.apply(&b.cfg()).unwrap();
    offer_n(&c, &mut tap, 3, DropReason::Vlan, 0);
    drain(&c);
    assert_eq!(a.packets().len(), 2);
    assert_eq!(b.packets().len(), 3);
    let bad = CaptureConfig {
        drops_file: "/nonexistent-spimux-dir/x.pcapng".into(),
        ..b.cfg()
    };
    let e = c.apply(&bad).unwrap_err();
    assert!(e.to_string().contains("capture.drops_file"), "{e}");
    let invalid = CaptureConfig {
        snap_len: 1,
        ..b.cfg()
    };
    match c.apply(&invalid) {
        Err(ApplyError::Config(e)) => assert_eq!(e.field, "capture.snap_len"),
        other => panic!("expected a config error: {other:?}"),
    }
    // Still capturing into b.
    assert!(c.is_active());
    offer_n(&c, &mut tap, 1, DropReason::Vlan, 0);
    drain(&c);
    assert_eq!(b.packets().len(), 4);
}

#[test]
fn full_queue_is_counted_not_waited_for() {
    let (_f, c, mut tap) = started("queue", |c| c.queue_len = 2);
    let local = offer_n(&c, &mut tap, 5, DropReason::Multicast, 0);
    assert_eq!(local.capture[CaptureResult::QueueFull as usize], 3);
    drain(&c);
    assert_eq!(c.writer_counts()[CaptureResult::Written as usize], 2);
}

#[test]
fn file_stops_at_its_size_cap_and_a_larger_cap_resumes_it() {
    let (f, c, mut tap) = started("cap", |c| c.max_file_bytes = 4096);
    let local = offer_n(&c, &mut tap, 60, DropReason::NotForUs, 0);
    drain(&c);
    let size = std::fs::metadata(&f.0).unwrap().len();
    assert!(size <= 4096, "{size}");
    assert_eq!(c.file_bytes(), size);
    let written = count(&c, &local, CaptureResult::Written);
    assert_eq!(written as usize, f.packets().len());
    assert!(written > 0 && written < 60);
    assert_eq!(count(&c, &local, CaptureResult::FileFull), 60 - written);
    assert!(!c.is_active(), "capture stops at the cap");
    c.apply(&CaptureConfig {
        max_file_bytes: 8192,
        ..f.cfg()
    })
    .unwrap();
    assert!(c.is_active(), "a larger cap resumes the same file");
    offer_n(&c, &mut tap, 1, DropReason::NotForUs, 0);
    drain(&c);
    assert_eq!(f.packets().len() as u64, written + 1);
}

#[test]
fn frames_queued_when_capture_is_turned_off_are_counted_closed() {
    let (f, c, mut tap) = started("closed", |_| {});
    offer_n(&c, &mut tap, 3, DropReason::Fragment, 0);
    c.apply(&CaptureConfig::default()).unwrap();
    drain(&c);
    assert_eq!(c.writer_counts()[CaptureResult::Closed as usize], 3);
    assert!(f.packets().is_empty());
}

#[test]
fn snap_length_cuts_frames_and_keeps_the_original_length() {
    let (f, c, mut tap) = started("snap", |c| c.snap_len = 64);
    let mut local = Counters::default();
    let big = frame(1000, 7);
    // The second time with a larger snap length on the same file: capped at the file's.
    for snap_len in [64, 512] {
        c.apply(&CaptureConfig {
            snap_len,
            ..f.cfg()
        })
        .unwrap();
        let (side, reason) = (Side::Outside, DropReason::MtuExceeded);
        c.offer(&mut tap, side, reason, &big, 0, &mut local);
    }
    drain(&c);
    let p = f.packets();
    assert_eq!(p.len(), 2);
    for p in &p {
        assert_eq!((p.iface, p.data.len(), p.orig_len), (1, 64, 1000));
        assert_eq!(p.data, big[..64]);
    }
}

#[test]
fn writer_thread_writes_until_shutdown_while_threads_offer() {
    let f = TempFile::new("thread");
    let c = std::sync::Arc::new(Capture::new(["lan0".into(), "wan0".into()], 2));
    c.apply(&CaptureConfig {
        max_per_sec: 1000,
        burst: 1000,
        ..f.cfg()
    })
    .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || c.run_writer(&stop))
    };
    let offerers: Vec<_> = [Side::Inside, Side::Outside]
        .into_iter()
        .map(|side| {
            let c = c.clone();
            std::thread::spawn(move || {
                let (mut tap, mut local) = (Tap::default(), Counters::default());
                for i in 0..200u8 {
                    c.offer(
                        &mut tap,
                        side,
                        DropReason::NoRoute,
                        &frame(64, i),
                        0,
                        &mut local,
                    );
                }
                local
            })
        })
        .collect();
    let mut local = Counters::default();
    for t in offerers {
        local.add(&t.join().unwrap());
    }
    // A reload while the writer runs.
    c.apply(&CaptureConfig {
        max_per_sec: 1000,
        burst: 1000,
        ..f.cfg()
    })
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let written = c.writer_counts()[CaptureResult::Written as usize];
    let refused = local.capture[CaptureResult::QueueFull as usize]
        + local.capture[CaptureResult::RateLimited as usize];
    assert_eq!(written + refused, 400, "every offer accounted for");
    assert_eq!(
        local.capture[CaptureResult::RateLimited as usize],
        0,
        "each thread's share is 500"
    );
    let p = f.packets();
    assert_eq!(p.len() as u64, written);
    assert!(p.iter().any(|p| p.iface == 0) && p.iter().any(|p| p.iface == 1));
}
