//! Registration request (RREQ) and reply (RREP) of the mobile endpoint: the
//! UDP payload sent inside the ESP tunnel to the gateway's inner address,
//! port 434. The format is documented in docs/MOBILITY.md.
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! |  Version = 1  |  Type (1|2)   |     Code      |   Reserved    |
//! +---------------+---------------+---------------+---------------+
//! |                  Identification (64 bits)                     |
//! +---------------+---------------+---------------+---------------+
//! |  TLV type     |  TLV length   |  value ...                    |
//! ```
//!
//! TLVs fill the rest of the payload. An unknown TLV type below 128 makes the
//! message unusable (the receiver cannot act safely without it); unknown
//! types from 128 up are skipped, so later versions can add information.

use core::net::Ipv4Addr;

/// Protocol version written and accepted.
pub const VERSION: u8 = 1;
/// Fixed header length.
pub const HEADER_LEN: usize = 12;
/// Well-known UDP port of registrations (as Mobile IP).
pub const PORT: u16 = 434;
/// Unknown TLV types from here up are skipped.
pub const SKIPPABLE: u8 = 128;

/// Message types.
pub mod kind {
    /// Registration request.
    pub const RREQ: u8 = 1;
    /// Registration reply.
    pub const RREP: u8 = 2;
}

/// TLV types.
pub mod tlv {
    /// Endpoint's inner address (4 bytes).
    pub const INNER_ADDRESS: u8 = 1;
    /// Outer header as the endpoint sent it (13 bytes, [`super::OuterHeader`]).
    pub const SENT_OUTER: u8 = 2;
    /// Encapsulations the endpoint supports (1 byte, bit per [`super::Encap`]).
    pub const SUPPORTED: u8 = 3;
    /// Outer header as the gateway received it (13 bytes).
    pub const OBSERVED_OUTER: u8 = 4;
    /// Fields a NAT changed (1 byte, [`super::NatFields`]).
    pub const NAT: u8 = 5;
    /// Encapsulation to use from now on (1 byte).
    pub const USE_ENCAP: u8 = 6;
    /// NAT keepalive interval in seconds (2 bytes; 0 = none).
    pub const KEEPALIVE: u8 = 7;
    /// Last identification the gateway accepted (8 bytes), sent with `Code::Stale`.
    pub const LAST_ID: u8 = 8;
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MobilityError {
    /// Shorter than the header or a TLV claims.
    #[error("truncated")]
    Truncated,
    /// Version other than [`VERSION`].
    #[error("unsupported version")]
    Version,
    /// Unknown message type or a field value the format does not allow.
    #[error("malformed")]
    Malformed,
    /// A required TLV is missing.
    #[error("missing field")]
    Missing,
    /// An unknown TLV below [`SKIPPABLE`].
    #[error("unknown critical field")]
    UnknownCritical,
}

/// How ESP travels on the outer path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// Plain ESP, IP protocol 50.
    Plain,
    /// ESP in UDP (RFC 3948).
    Udp,
    /// ESP in TCP (RFC 8229).
    Tcp,
}

impl Encap {
    /// Every encapsulation, in order of preference when nothing forbids it.
    pub const ALL: [Encap; 3] = [Encap::Plain, Encap::Udp, Encap::Tcp];

    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Encap::Plain => 0,
            Encap::Udp => 1,
            Encap::Tcp => 2,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u8) -> Option<Encap> {
        Encap::ALL.into_iter().find(|e| e.code() == c)
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Encap::Plain => "esp",
            Encap::Udp => "udp",
            Encap::Tcp => "tcp",
        }
    }
}

/// A set of encapsulations (bit `code` set when supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncapSet(pub u8);

impl EncapSet {
    /// The set holding exactly `list`.
    pub fn of(list: &[Encap]) -> EncapSet {
        EncapSet(list.iter().fold(0, |m, e| m | 1 << e.code()))
    }
    /// True when `e` is in the set.
    pub fn contains(self, e: Encap) -> bool {
        self.0 & (1 << e.code()) != 0
    }
}

/// An outer header summary: what a NAT may rewrite. Ports are 0 for plain ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterHeader {
    /// Encapsulation of the packet.
    pub encap: Encap,
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// UDP/TCP source port.
    pub sport: u16,
    /// UDP/TCP destination port.
    pub dport: u16,
}

/// Encoded length of an [`OuterHeader`].
const OUTER_LEN: usize = 13;

impl OuterHeader {
    fn parse(v: &[u8]) -> Result<OuterHeader, MobilityError> {
        let b: &[u8; OUTER_LEN] = v.try_into().map_err(|_| MobilityError::Malformed)?;
        let [e, s0, s1, s2, s3, d0, d1, d2, d3, p0, p1, q0, q1] = *b;
        Ok(OuterHeader {
            encap: Encap::from_code(e).ok_or(MobilityError::Malformed)?,
            src: Ipv4Addr::new(s0, s1, s2, s3),
            dst: Ipv4Addr::new(d0, d1, d2, d3),
            sport: u16::from_be_bytes([p0, p1]),
            dport: u16::from_be_bytes([q0, q1]),
        })
    }

    fn encode(&self) -> [u8; OUTER_LEN] {
        let mut b = [0u8; OUTER_LEN];
        b[0] = self.encap.code();
        b[1..5].copy_from_slice(&self.src.octets());
        b[5..9].copy_from_slice(&self.dst.octets());
        b[9..11].copy_from_slice(&self.sport.to_be_bytes());
        b[11..13].copy_from_slice(&self.dport.to_be_bytes());
        b
    }
}

/// Which outer fields a translator changed between sender and receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatFields(pub u8);

impl NatFields {
    /// Source address rewritten.
    pub const SRC_ADDR: u8 = 1;
    /// Source port rewritten.
    pub const SRC_PORT: u8 = 2;
    /// Destination address rewritten.
    pub const DST_ADDR: u8 = 4;
    /// Destination port rewritten.
    pub const DST_PORT: u8 = 8;

    /// Compares what was sent with what arrived.
    pub fn between(sent: &OuterHeader, seen: &OuterHeader) -> NatFields {
        let mut m = 0;
        for (changed, bit) in [
            (sent.src != seen.src, Self::SRC_ADDR),
            (sent.sport != seen.sport, Self::SRC_PORT),
            (sent.dst != seen.dst, Self::DST_ADDR),
            (sent.dport != seen.dport, Self::DST_PORT),
        ] {
            if changed {
                m |= bit;
            }
        }
        NatFields(m)
    }

    /// True when anything was translated.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// The kind of translation, for reports and metric labels.
    pub fn kind(self) -> NatKind {
        match self.0 {
            0 => NatKind::None,
            Self::SRC_ADDR => NatKind::Address,
            m if m == Self::SRC_ADDR | Self::SRC_PORT => NatKind::AddressAndPort,
            Self::SRC_PORT => NatKind::PortOnly,
            _ => NatKind::Destination,
        }
    }
}

/// Kinds of translation a registration can reveal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Nothing changed.
    None,
    /// Source address only (basic NAT, or a NAPT that kept the port).
    Address,
    /// Source address and port (NAPT).
    AddressAndPort,
    /// Source port only.
    PortOnly,
    /// The destination was rewritten (port forwarding, DNAT).
    Destination,
}

impl NatKind {
    /// Every kind, for zero-valued counters.
    pub const ALL: [NatKind; 5] = [
        NatKind::None,
        NatKind::Address,
        NatKind::AddressAndPort,
        NatKind::PortOnly,
        NatKind::Destination,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            NatKind::None => "none",
            NatKind::Address => "address",
            NatKind::AddressAndPort => "address_and_port",
            NatKind::PortOnly => "port",
            NatKind::Destination => "destination",
        }
    }
}

/// Result code of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Registration accepted; the reply names the encapsulation.
    Accepted,
    /// Identification not newer than the last accepted one.
    Stale,
    /// The inner address does not belong to the SA.
    InnerMismatch,
    /// This encapsulation cannot be used on this path (e.g. plain ESP across a NAT).
    EncapRefused,
    /// The request lacked something or carried an unknown critical field.
    BadRequest,
    /// The SA's outer peer is configured (static) and never moves.
    StaticPeer,
}

impl Code {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Code::Accepted => 0,
            Code::Stale => 64,
            Code::InnerMismatch => 65,
            Code::EncapRefused => 66,
            Code::BadRequest => 67,
            Code::StaticPeer => 68,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u8) -> Option<Code> {
        [
            Code::Accepted,
            Code::Stale,
            Code::InnerMismatch,
            Code::EncapRefused,
            Code::BadRequest,
            Code::StaticPeer,
        ]
        .into_iter()
        .find(|k| k.code() == c)
    }
}

/// A registration request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rreq {
    /// Strictly increasing per SA.
    pub id: u64,
    /// The endpoint's inner address.
    pub inner: Ipv4Addr,
    /// The outer header this copy was sent with.
    pub sent: OuterHeader,
    /// Encapsulations the endpoint can use.
    pub supported: EncapSet,
}

/// A registration reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rrep {
    /// Identification of the request answered.
    pub id: u64,
    /// Result.
    pub code: Code,
    /// The outer header as the gateway received the request.
    pub observed: OuterHeader,
    /// Fields translated on the way.
    pub nat: NatFields,
    /// Encapsulation to use (accepted replies).
    pub use_encap: Option<Encap>,
    /// NAT keepalive interval, seconds (0 = none).
    pub keepalive_secs: u16,
    /// Last identification accepted (stale replies), so the endpoint can move past it.
    pub last_id: Option<u64>,
}

/// A parsed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Request.
    Rreq(Rreq),
    /// Reply.
    Rrep(Rrep),
}

/// The TLVs of a message, collected without copying.
#[derive(Default)]
struct Fields<'a> {
    inner: Option<&'a [u8]>,
    sent: Option<&'a [u8]>,
    supported: Option<&'a [u8]>,
    observed: Option<&'a [u8]>,
    nat: Option<&'a [u8]>,
    use_encap: Option<&'a [u8]>,
    keepalive: Option<&'a [u8]>,
    last_id: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn collect(mut b: &'a [u8]) -> Result<Fields<'a>, MobilityError> {
        let mut f = Fields::default();
        while let [t, l, rest @ ..] = b {
            let len = usize::from(*l);
            let value = rest.get(..len).ok_or(MobilityError::Truncated)?;
            b = rest.get(len..).unwrap_or_default();
            let slot = match *t {
                tlv::INNER_ADDRESS => &mut f.inner,
                tlv::SENT_OUTER => &mut f.sent,
                tlv::SUPPORTED => &mut f.supported,
                tlv::OBSERVED_OUTER => &mut f.observed,
                tlv::NAT => &mut f.nat,
                tlv::USE_ENCAP => &mut f.use_encap,
                tlv::KEEPALIVE => &mut f.keepalive,
                tlv::LAST_ID => &mut f.last_id,
                t if t >= SKIPPABLE => continue,
                _ => return Err(MobilityError::UnknownCritical),
            };
            *slot = Some(value);
        }
        if !b.is_empty() {
            return Err(MobilityError::Truncated);
        }
        Ok(f)
    }
}

fn fixed<const N: usize>(v: Option<&[u8]>) -> Result<[u8; N], MobilityError> {
    v.ok_or(MobilityError::Missing)?
        .try_into()
        .map_err(|_| MobilityError::Malformed)
}

impl Message {
    /// Parses a UDP payload.
    pub fn parse(b: &[u8]) -> Result<Message, MobilityError> {
        let (head, body) = b
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(MobilityError::Truncated)?;
        let [version, ty, code, _reserved, id @ ..] = *head;
        if version != VERSION {
            return Err(MobilityError::Version);
        }
        let id = u64::from_be_bytes(id);
        let f = Fields::collect(body)?;
        match ty {
            kind::RREQ => Ok(Message::Rreq(Rreq {
                id,
                inner: Ipv4Addr::from(fixed::<4>(f.inner)?),
                sent: OuterHeader::parse(f.sent.ok_or(MobilityError::Missing)?)?,
                supported: EncapSet(fixed::<1>(f.supported)?[0]),
            })),
            kind::RREP => {
                let use_encap = match f.use_encap {
                    Some(_) => {
                        let [c] = fixed::<1>(f.use_encap)?;
                        Some(Encap::from_code(c).ok_or(MobilityError::Malformed)?)
                    }
                    None => None,
                };
                let keepalive_secs = match f.keepalive {
                    Some(_) => u16::from_be_bytes(fixed::<2>(f.keepalive)?),
                    None => 0,
                };
                let last_id = match f.last_id {
                    Some(_) => Some(u64::from_be_bytes(fixed::<8>(f.last_id)?)),
                    None => None,
                };
                Ok(Message::Rrep(Rrep {
                    id,
                    code: Code::from_code(code).ok_or(MobilityError::Malformed)?,
                    observed: OuterHeader::parse(f.observed.ok_or(MobilityError::Missing)?)?,
                    nat: NatFields(fixed::<1>(f.nat)?[0]),
                    use_encap,
                    keepalive_secs,
                    last_id,
                }))
            }
            _ => Err(MobilityError::Malformed),
        }
    }

    /// Encodes into `out`; returns the length, or `None` when `out` is too small.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer { out, at: 0 };
        match self {
            Message::Rreq(r) => {
                w.header(kind::RREQ, 0, r.id)?;
                w.tlv(tlv::INNER_ADDRESS, &r.inner.octets())?;
                w.tlv(tlv::SENT_OUTER, &r.sent.encode())?;
                w.tlv(tlv::SUPPORTED, &[r.supported.0])?;
            }
            Message::Rrep(r) => {
                w.header(kind::RREP, r.code.code(), r.id)?;
                w.tlv(tlv::OBSERVED_OUTER, &r.observed.encode())?;
                w.tlv(tlv::NAT, &[r.nat.0])?;
                if let Some(e) = r.use_encap {
                    w.tlv(tlv::USE_ENCAP, &[e.code()])?;
                }
                if r.keepalive_secs != 0 {
                    w.tlv(tlv::KEEPALIVE, &r.keepalive_secs.to_be_bytes())?;
                }
                if let Some(id) = r.last_id {
                    w.tlv(tlv::LAST_ID, &id.to_be_bytes())?;
                }
            }
        }
        Some(w.at)
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.at..self.at + b.len())?
            .copy_from_slice(b);
        self.at += b.len();
        Some(())
    }
    fn header(&mut self, ty: u8, code: u8, id: u64) -> Option<()> {
        self.put(&[VERSION, ty, code, 0])?;
        self.put(&id.to_be_bytes())
    }
    fn tlv(&mut self, ty: u8, v: &[u8]) -> Option<()> {
        self.put(&[ty, u8::try_from(v.len()).ok()?])?;
        self.put(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rreq() -> Rreq {
        Rreq {
            id: 0x0102_0304_0506_0708,
            inner: Ipv4Addr::new(10, 98, 0, 5),
            sent: OuterHeader {
                encap: Encap::Udp,
                src: Ipv4Addr::new(10, 77, 0, 2),
                dst: Ipv4Addr::new(198, 51, 100, 69),
                sport: 4500,
                dport: 4500,
            },
            supported: EncapSet::of(&[Encap::Plain, Encap::Udp]),
        }
    }

    /// The RREQ above, byte for byte (docs/MOBILITY.md shows the same vector).
    const RREQ_BYTES: [u8; 36] = [
        1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, // header
        1, 4, 10, 98, 0, 5, // inner address
        2, 13, 1, 10, 77, 0, 2, 198, 51, 100, 69, 0x11, 0x94, 0x11, 0x94, // sent outer
        3, 1, 0b011, // plain + UDP
    ];

    #[test]
    fn rreq_matches_the_documented_vector() {
        let mut b = [0u8; 64];
        let n = Message::Rreq(rreq()).emit(&mut b).unwrap();
        assert_eq!(&b[..n], &RREQ_BYTES[..]);
        assert_eq!(Message::parse(&RREQ_BYTES), Ok(Message::Rreq(rreq())));
    }

    #[test]
    fn rrep_round_trips_with_optional_fields() {
        let sent = rreq().sent;
        let observed = OuterHeader {
            src: Ipv4Addr::new(203, 0, 113, 66),
            sport: 1024,
            ..sent
        };
        let r = Rrep {
            id: 7,
            code: Code::Accepted,
            observed,
            nat: NatFields::between(&sent, &observed),
            use_encap: Some(Encap::Udp),
            keepalive_secs: 20,
            last_id: None,
        };
        assert_eq!(r.nat.kind(), NatKind::AddressAndPort);
        let mut b = [0u8; 64];
        let n = Message::Rrep(r).emit(&mut b).unwrap();
        assert_eq!(
            &b[..n],
            &[
                1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, //
                4, 13, 1, 203, 0, 113, 66, 198, 51, 100, 69, 0x04, 0x00, 0x11, 0x94, //
                5, 1, 3, //
                6, 1, 1, //
                7, 2, 0, 20,
            ][..]
        );
        assert_eq!(Message::parse(&b[..n]), Ok(Message::Rrep(r)));
        let stale = Rrep {
            code: Code::Stale,
            use_encap: None,
            keepalive_secs: 0,
            last_id: Some(9),
            ..r
        };
        let n = Message::Rrep(stale).emit(&mut b).unwrap();
        assert_eq!(Message::parse(&b[..n]), Ok(Message::Rrep(stale)));
    }

    #[test]
    fn skippable_tlvs_are_ignored_and_critical_ones_refused() {
        let mut v = RREQ_BYTES.to_vec();
        v.extend_from_slice(&[200, 3, 9, 9, 9]);
        assert_eq!(Message::parse(&v), Ok(Message::Rreq(rreq())));
        let mut v = RREQ_BYTES.to_vec();
        v.extend_from_slice(&[99, 0]);
        assert_eq!(Message::parse(&v), Err(MobilityError::UnknownCritical));
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        for n in 0..RREQ_BYTES.len() {
            assert!(Message::parse(&RREQ_BYTES[..n]).is_err(), "prefix {n}");
        }
        let mut v = RREQ_BYTES;
        v[0] = 2;
        assert_eq!(Message::parse(&v), Err(MobilityError::Version));
        let mut v = RREQ_BYTES;
        v[1] = 9;
        assert_eq!(Message::parse(&v), Err(MobilityError::Malformed));
        let mut v = RREQ_BYTES;
        v[20] = 7; // encapsulation code
        assert_eq!(Message::parse(&v), Err(MobilityError::Malformed));
        let mut v = RREQ_BYTES;
        v[13] = 5; // inner-address TLV claims 5 bytes
        assert!(Message::parse(&v).is_err());
        // Every byte value at every position: never a panic.
        for i in 0..RREQ_BYTES.len() {
            for x in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut v = RREQ_BYTES;
                v[i] = x;
                let _ = Message::parse(&v);
            }
        }
    }

    #[test]
    fn emit_refuses_small_buffers() {
        let mut b = [0u8; 20];
        assert_eq!(Message::Rreq(rreq()).emit(&mut b), None);
    }

    #[test]
    fn nat_kinds() {
        let s = rreq().sent;
        let k = |o: OuterHeader| NatFields::between(&s, &o).kind();
        assert_eq!(k(s), NatKind::None);
        assert_eq!(
            k(OuterHeader {
                src: Ipv4Addr::new(1, 2, 3, 4),
                ..s
            }),
            NatKind::Address
        );
        assert_eq!(k(OuterHeader { sport: 1, ..s }), NatKind::PortOnly);
        assert_eq!(k(OuterHeader { dport: 1, ..s }), NatKind::Destination);
    }
}
