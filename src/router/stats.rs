//! Per-worker counters. Each worker counts into a plain struct and copies it
//! into its own slot once per receive batch; a scrape sums the slots. No
//! atomic is touched per packet and no cache line is shared between workers.

use crate::daemon::stats::Merge;
use crate::nat::{NatDrop, NatEvents};

/// Why the router dropped a frame before or after the NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    EthTruncated,
    /// Longer than the receive buffer (offloads on?); never forwarded cut.
    Oversize,
    /// 802.1Q tagged; VLANs are not configured.
    Vlan,
    /// EtherType other than IPv4 and ARP (IPv6 included).
    NonIpv4,
    /// Unicast to another MAC address.
    NotForUs,
    /// Multicast frame (the router joins no groups).
    Multicast,
    /// ARP not Ethernet/IPv4 or cut short.
    ArpMalformed,
    /// ARP from a sender that is not a host of the interface's prefix (or
    /// claims one of the router's addresses); address probes included.
    ArpBadSender,
    /// IPv4 header cut short or total length beyond the frame.
    IpTruncated,
    /// Bad version, IHL or total length.
    IpMalformed,
    /// IPv4 header checksum wrong.
    IpBadChecksum,
    /// Fragment (no reassembly).
    Fragment,
    /// TTL would reach zero; ICMP time exceeded sent.
    TtlExceeded,
    /// Inside packet with a source outside the inside prefixes.
    BadSource,
    /// Outside packet not addressed to one of our external addresses.
    NotOurAddress,
    /// Addressed to the router itself but not something it answers.
    LocalUnsupported,
    /// No route to the destination.
    NoRoute,
    /// Next hop unresolved and its queue is full.
    ArpQueueFull,
    /// Next hop did not answer ARP.
    ArpUnresolved,
    /// The kernel refused to send.
    TxError,
    /// Offload metadata the router does not forward (IPv6 or UFO GSO, unknown types).
    OffloadUnsupported,
    /// Offload metadata that does not match the packet (checksum position,
    /// GSO type vs protocol).
    OffloadMismatch,
    /// The packet (or a GSO segment) is larger than the egress interface's MTU.
    MtuExceeded,
    /// Dropped by the NAT core.
    Nat(NatDrop),
}

const ROUTER_DROPS: [DropReason; 23] = [
    DropReason::EthTruncated,
    DropReason::Oversize,
    DropReason::Vlan,
    DropReason::NonIpv4,
    DropReason::NotForUs,
    DropReason::Multicast,
    DropReason::ArpMalformed,
    DropReason::ArpBadSender,
    DropReason::IpTruncated,
    DropReason::IpMalformed,
    DropReason::IpBadChecksum,
    DropReason::Fragment,
    DropReason::TtlExceeded,
    DropReason::BadSource,
    DropReason::NotOurAddress,
    DropReason::LocalUnsupported,
    DropReason::NoRoute,
    DropReason::ArpQueueFull,
    DropReason::ArpUnresolved,
    DropReason::TxError,
    DropReason::OffloadUnsupported,
    DropReason::OffloadMismatch,
    DropReason::MtuExceeded,
];

/// Number of distinct drop labels.
pub const DROP_KINDS: usize = ROUTER_DROPS.len() + NatDrop::ALL.len();

impl DropReason {
    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        ROUTER_DROPS
            .into_iter()
            .chain(NatDrop::ALL.into_iter().map(DropReason::Nat))
    }

    /// Dense index for counter arrays.
    pub fn index(self) -> usize {
        match self {
            DropReason::Nat(n) => ROUTER_DROPS.len() + n as usize,
            d => ROUTER_DROPS.iter().position(|x| *x == d).unwrap_or(0),
        }
    }

    /// Prometheus `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::EthTruncated => "eth_truncated",
            DropReason::Oversize => "oversize",
            DropReason::Vlan => "vlan",
            DropReason::NonIpv4 => "non_ipv4",
            DropReason::NotForUs => "not_for_us",
            DropReason::Multicast => "multicast",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::ArpBadSender => "arp_bad_sender",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpMalformed => "ip_malformed",
            DropReason::IpBadChecksum => "ip_bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::BadSource => "bad_source",
            DropReason::NotOurAddress => "not_our_address",
            DropReason::LocalUnsupported => "local_unsupported",
            DropReason::NoRoute => "no_route",
            DropReason::ArpQueueFull => "arp_queue_full",
            DropReason::ArpUnresolved => "arp_unresolved",
            DropReason::TxError => "tx_error",
            DropReason::OffloadUnsupported => "offload_unsupported",
            DropReason::OffloadMismatch => "offload_mismatch",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::Nat(n) => n.label(),
        }
    }
}

/// What became of a dropped frame offered to the drop capture
/// (`spimux_capture_frames_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureResult {
    /// Written to the pcapng file.
    Written,
    /// Not copied: the capture's token bucket was empty.
    RateLimited,
    /// Not copied: the writer's queue held `capture.queue_len` frames.
    QueueFull,
    /// Not written: the file could not be written (capture stopped).
    WriteError,
    /// Not written: the file reached `capture.max_file_bytes` (capture stopped).
    FileFull,
    /// Not written: capture was turned off while the frame was queued.
    Closed,
}

impl CaptureResult {
    /// Every result, in index order.
    pub const ALL: [CaptureResult; 6] = [
        CaptureResult::Written,
        CaptureResult::RateLimited,
        CaptureResult::QueueFull,
        CaptureResult::WriteError,
        CaptureResult::FileFull,
        CaptureResult::Closed,
    ];

    /// Prometheus `result` label.
    pub fn label(self) -> &'static str {
        match self {
            CaptureResult::Written => "written",
            CaptureResult::RateLimited => "rate_limited",
            CaptureResult::QueueFull => "queue_full",
            CaptureResult::WriteError => "write_error",
            CaptureResult::FileFull => "file_full",
            CaptureResult::Closed => "closed",
        }
    }
}

/// Interface index in counter arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// LAN.
    Inside = 0,
    /// WAN.
    Outside = 1,
}

impl Side {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Side::Inside => "inside",
            Side::Outside => "outside",
        }
    }
}

/// Everything one thread counts.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Frames received per side.
    pub rx_packets: [u64; 2],
    /// Bytes received per side.
    pub rx_bytes: [u64; 2],
    /// Frames sent per side.
    pub tx_packets: [u64; 2],
    /// Bytes sent per side.
    pub tx_bytes: [u64; 2],
    /// Drops by `DropReason::index`.
    pub drops: [u64; DROP_KINDS],
    /// ARP requests answered.
    pub arp_replies_sent: u64,
    /// ARP requests sent.
    pub arp_requests_sent: u64,
    /// ICMP messages the router originated (echo replies, time exceeded).
    pub icmp_sent: u64,
    /// ICMP errors not sent, by `icmp_errors::Suppressed as usize`.
    pub icmp_errors_suppressed: [u64; 3],
    /// ARP senders not cached because the interface's cache was full.
    pub arp_cache_full: u64,
    /// Frames forwarded with a partial TCP/UDP checksum left for the next hop.
    pub offload_partial: u64,
    /// GSO super-frames forwarded as one frame.
    pub offload_gso: u64,
    /// Wire packets those super-frames stand for.
    pub gso_segments: u64,
    /// NAT core events.
    pub nat: NatEvents,
    /// Dropped frames the receive threads did not hand to the drop capture,
    /// by `CaptureResult as usize` (the writer counts the rest itself).
    pub capture: [u64; CaptureResult::ALL.len()],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_packets: [0; 2],
            rx_bytes: [0; 2],
            tx_packets: [0; 2],
            tx_bytes: [0; 2],
            drops: [0; DROP_KINDS],
            arp_replies_sent: 0,
            arp_requests_sent: 0,
            icmp_sent: 0,
            icmp_errors_suppressed: [0; 3],
            arp_cache_full: 0,
            offload_partial: 0,
            offload_gso: 0,
            gso_segments: 0,
            nat: NatEvents::default(),
            capture: [0; CaptureResult::ALL.len()],
        }
    }
}

impl Counters {
    /// Counts a drop.
    pub fn count_drop(&mut self, d: DropReason) {
        if let Some(c) = self.drops.get_mut(d.index()) {
            *c += 1;
        }
    }

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counters) {
        for i in 0..2 {
            self.rx_packets[i] += o.rx_packets[i];
            self.rx_bytes[i] += o.rx_bytes[i];
            self.tx_packets[i] += o.tx_packets[i];
            self.tx_bytes[i] += o.tx_bytes[i];
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.arp_replies_sent += o.arp_replies_sent;
        self.arp_requests_sent += o.arp_requests_sent;
        self.icmp_sent += o.icmp_sent;
        for (a, b) in self
            .icmp_errors_suppressed
            .iter_mut()
            .zip(o.icmp_errors_suppressed.iter())
        {
            *a += b;
        }
        self.arp_cache_full += o.arp_cache_full;
        self.offload_partial += o.offload_partial;
        self.offload_gso += o.offload_gso;
        self.gso_segments += o.gso_segments;
        self.nat.add(&o.nat);
        for (a, b) in self.capture.iter_mut().zip(o.capture.iter()) {
            *a += b;
        }
    }

    /// Total drops; NAT drops are counted both in `drops` and `nat.drops`, so only `drops` is summed.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl Merge for Counters {
    fn merge(&mut self, o: &Self) {
        self.add(o);
    }
}

/// The router's per-thread counter slots.
pub type StatsRegistry = crate::daemon::stats::StatsRegistry<Counters>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_labels_unique() {
        let all: Vec<DropReason> = DropReason::all().collect();
        assert_eq!(all.len(), DROP_KINDS);
        for (i, d) in all.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
        let mut labels: Vec<_> = all.iter().map(|d| d.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), DROP_KINDS);
    }

    #[test]
    fn registry_sums_slots() {
        let r = StatsRegistry::default();
        let a = r.slot();
        let b = r.slot();
        a.lock().count_drop(DropReason::Fragment);
        b.lock().count_drop(DropReason::Fragment);
        b.lock().rx_packets[1] = 5;
        let t = r.total();
        assert_eq!(t.drops[DropReason::Fragment.index()], 2);
        assert_eq!(t.rx_packets[1], 5);
    }
}
