//! Why the NAT refused a packet, and what it did, as plain counters the
//! caller owns (one set per worker, folded together when scraped).

/// Reasons the NAT core drops a packet. Each maps to a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NatDrop {
    /// Transport header cut short or inconsistent.
    MalformedL4,
    /// IP protocol the NAT does not translate.
    UnsupportedProtocol,
    /// ICMP type that is neither echo nor a quoting error.
    UnsupportedIcmp,
    /// Inbound packet for an external port with no mapping.
    NoMapping,
    /// Inbound packet refused by address(-and-port)-dependent filtering.
    Filtered,
    /// Session table full.
    TableFull,
    /// The inside host has reached its session limit.
    HostLimit,
    /// The inside host exceeded its new-session rate.
    RateLimited,
    /// No free external port.
    PortsExhausted,
    /// ICMP error whose quoted packet matches no mapping.
    IcmpErrorNoMapping,
    /// Inbound ESP whose SPI matches several inside hosts.
    EspCollision,
    /// Inbound ESP whose SPI matches no inside host.
    EspUnmatched,
    /// Outbound ESP reusing an SPI another inside host recorded with that responder.
    EspSpiConflict,
    /// Inside host already has the maximum number of outbound SPIs recorded.
    EspHostLimit,
    /// Inbound ESP whose SPI matches only outbound SPIs that already paired
    /// with another inbound SPI (an SA pairs once).
    EspAlreadyPaired,
    /// Inbound ESP with an unknown SPI from a responder with no unpaired
    /// outbound SPI: dropped before any hashing or locking.
    EspNoPending,
    /// Unknown-SPI lookups for this responder over `esp.resolve_per_sec_per_responder`.
    EspResolveRateLimited,
    /// The responder has `esp.max_bindings_per_responder` bindings.
    EspResponderBindingLimit,
    /// `esp.max_bindings` bindings exist.
    EspBindingsFull,
    /// `esp.max_spis` outbound SPIs are recorded.
    EspSpisFull,
    /// The inside host holds `nat.limits.max_ports_per_host` ports of this protocol.
    PortQuota,
    /// `nat.limits.max_hosts` inside hosts have state.
    HostsFull,
}

impl NatDrop {
    /// Every reason, in label order.
    pub const ALL: [NatDrop; 22] = [
        NatDrop::MalformedL4,
        NatDrop::UnsupportedProtocol,
        NatDrop::UnsupportedIcmp,
        NatDrop::NoMapping,
        NatDrop::Filtered,
        NatDrop::TableFull,
        NatDrop::HostLimit,
        NatDrop::RateLimited,
        NatDrop::PortsExhausted,
        NatDrop::IcmpErrorNoMapping,
        NatDrop::EspCollision,
        NatDrop::EspUnmatched,
        NatDrop::EspSpiConflict,
        NatDrop::EspHostLimit,
        NatDrop::EspAlreadyPaired,
        NatDrop::EspNoPending,
        NatDrop::EspResolveRateLimited,
        NatDrop::EspResponderBindingLimit,
        NatDrop::EspBindingsFull,
        NatDrop::EspSpisFull,
        NatDrop::PortQuota,
        NatDrop::HostsFull,
    ];

    /// Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            NatDrop::MalformedL4 => "malformed_l4",
            NatDrop::UnsupportedProtocol => "unsupported_protocol",
            NatDrop::UnsupportedIcmp => "unsupported_icmp",
            NatDrop::NoMapping => "no_mapping",
            NatDrop::Filtered => "filtered",
            NatDrop::TableFull => "table_full",
            NatDrop::HostLimit => "host_limit",
            NatDrop::RateLimited => "rate_limited",
            NatDrop::PortsExhausted => "ports_exhausted",
            NatDrop::IcmpErrorNoMapping => "icmp_error_no_mapping",
            NatDrop::EspCollision => "esp_collision",
            NatDrop::EspUnmatched => "esp_unmatched",
            NatDrop::EspSpiConflict => "esp_spi_conflict",
            NatDrop::EspHostLimit => "esp_host_limit",
            NatDrop::EspAlreadyPaired => "esp_already_paired",
            NatDrop::EspNoPending => "esp_no_pending",
            NatDrop::EspResolveRateLimited => "esp_resolve_rate_limited",
            NatDrop::EspResponderBindingLimit => "esp_responder_binding_limit",
            NatDrop::EspBindingsFull => "esp_bindings_full",
            NatDrop::EspSpisFull => "esp_spis_full",
            NatDrop::PortQuota => "port_quota",
            NatDrop::HostsFull => "hosts_full",
        }
    }
}

/// Protocols for per-protocol counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP query (echo).
    Icmp,
}

impl Proto {
    /// All, in label order.
    pub const ALL: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }
    /// From an IP protocol number.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            1 => Some(Proto::Icmp),
            _ => None,
        }
    }
    /// Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// ESP demultiplexing outcomes worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EspEvents {
    /// Outbound SPIs recorded.
    pub spis_recorded: u64,
    /// Unknown inbound SPIs bound by the responder-derives relation.
    pub matched_responder_derived: u64,
    /// Unknown inbound SPIs bound by the inside-derives relation.
    pub matched_inside_derived: u64,
    /// Unknown inbound SPIs bound by the single-pending fallback.
    pub fallback_binds: u64,
    /// Inbound packets forwarded on an existing binding.
    pub bound_packets: u64,
    /// Bindings expired.
    pub bindings_expired: u64,
    /// Outbound SPIs expired.
    pub spis_expired: u64,
}

/// Counters the NAT core adds to; plain integers owned by one thread.
#[derive(Debug, Clone, Default)]
pub struct NatEvents {
    /// Drops by reason, indexed by `NatDrop as usize`.
    pub drops: [u64; NatDrop::ALL.len()],
    /// Sessions created, by `Proto as usize`.
    pub created: [u64; 3],
    /// Sessions expired, by `Proto as usize`.
    pub expired: [u64; 3],
    /// ICMP errors translated.
    pub icmp_errors_translated: u64,
    /// Packets hairpinned (inside to own external address).
    pub hairpinned: u64,
    /// ESP outcomes.
    pub esp: EspEvents,
}

impl NatEvents {
    /// Records a drop and returns it, for `return Err(ev.count(..))`.
    pub fn count(&mut self, r: NatDrop) -> NatDrop {
        self.drops[r as usize] += 1;
        r
    }

    /// Adds another set into this one.
    pub fn add(&mut self, o: &NatEvents) {
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        for i in 0..3 {
            self.created[i] += o.created[i];
            self.expired[i] += o.expired[i];
        }
        self.icmp_errors_translated += o.icmp_errors_translated;
        self.hairpinned += o.hairpinned;
        let (e, f) = (&mut self.esp, &o.esp);
        e.spis_recorded += f.spis_recorded;
        e.matched_responder_derived += f.matched_responder_derived;
        e.matched_inside_derived += f.matched_inside_derived;
        e.fallback_binds += f.fallback_binds;
        e.bound_packets += f.bound_packets;
        e.bindings_expired += f.bindings_expired;
        e.spis_expired += f.spis_expired;
    }
}
