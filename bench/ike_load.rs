//! IKEv2 setup-rate load generator for `bench/ike_setup_rate.sh`.
//!
//! Keeps `--window` IKE SA setups in flight against one responder until
//! `--count` have completed: IKE_SA_INIT (AES-128-GCM-16, PRF-HMAC-SHA2-256,
//! x25519) then IKE_AUTH with PSK and the first CHILD_SA (ESP AES-128-GCM-16).
//! A setup counts when the IKE_AUTH response carries the responder's AUTH
//! (verified), an accepted ESP proposal and both traffic selectors, and no
//! error notification. Established SAs are left to the responder (no
//! DELETE), so it accumulates `--count` IKE SAs and CHILD_SAs, as a gateway
//! does when its clients connect. No INITIAL_CONTACT is sent, so the
//! responder never tears down earlier SAs of the same identity.
//!
//! With `--behind-nat` the generator poses as a client behind a NAT: its
//! NAT_DETECTION_SOURCE_IP hash matches no address, so the responder
//! detects a NAT, IKE_AUTH continues on UDP 4500 (non-ESP marker) and the
//! CHILD_SA is UDP-encapsulated (RFC 7296 §2.23) — what most clients do,
//! and the only ESP strongSwan's kernel-libipsec installs. Without it no
//! NAT detection payloads are sent and everything stays on UDP 500.
//!
//! The generator is deliberately light: no state machine beyond the two
//! exchanges, one UDP socket, retransmission of the last request after
//! `--retransmit-ms` (at most `--tries` sends). Its per-setup cost is one
//! x25519 key pair and agreement, key derivation and two AES-GCM
//! operations, so on its own core it outruns a responder on another.
//!
//! Prints one line of `key=value` pairs (setups/s over the whole run,
//! latency percentiles, the generator's own CPU time) for the script.
//! Built with the crypto and codec of the `spimux` library; correctness
//! against an independent implementation is what the strongSwan run shows.

use clap::Parser;
use ipnet::Ipv4Net;
use ring::rand::{SecureRandom, SystemRandom};
use spimux::ike::crypto::{
    nat_detection_hash, psk_auth, psk_verify, signed_octets, Encr, EspSuite, Group, IkeSuite,
    KeyExchange, Prf, SkCipher,
};
use spimux::ike::message::{self, Opened, Reassembly};
use spimux::ike::proposal::{accepted_esp, accepted_ike, esp_offer, ike_offer};
use spimux::ike::selectors::from_nets;
use spimux::wire::ike::{
    chain_len, emit_message, parse_chain, AuthMethod, ExchangeType, Flags, Header, HeaderRepr,
    Identification, Notify, NotifyType, Payload, PayloadType, HEADER_LEN, NON_ESP_MARKER,
};
use std::collections::HashMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "IKEv2 setup-rate load generator (PSK, x25519, AES-GCM)")]
struct Args {
    /// Responder's IKE address and port.
    #[arg(long)]
    server: SocketAddrV4,
    /// Local address to bind (port 0: any).
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: SocketAddrV4,
    /// Setups to complete.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Setups in flight at once.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Pre-shared key.
    #[arg(long)]
    psk: String,
    /// Our identity (FQDN).
    #[arg(long, default_value = "h1")]
    id: String,
    /// The responder's identity (FQDN), sent as IDr.
    #[arg(long, default_value = "gw")]
    peer_id: String,
    /// Our traffic selector (TSi).
    #[arg(long, default_value = "10.98.0.2/32")]
    local_ts: Ipv4Net,
    /// The responder's traffic selector (TSr).
    #[arg(long, default_value = "10.99.0.0/24")]
    remote_ts: Ipv4Net,
    /// Resend a request unanswered for this long (ms).
    #[arg(long, default_value_t = 1000)]
    retransmit_ms: u64,
    /// Sends of one request before the setup counts as timed out.
    #[arg(long, default_value_t = 3)]
    tries: u32,
    /// Give up after this many seconds in total.
    #[arg(long, default_value_t = 120)]
    deadline_secs: u64,
    /// Pose as a client behind a NAT (see the module docs).
    #[arg(long)]
    behind_nat: bool,
    /// The responder's NAT traversal port.
    #[arg(long, default_value_t = 4500)]
    natt_port: u16,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

const SUITE: IkeSuite = IkeSuite {
    encr: Encr::AesGcm16 { key_bits: 128 },
    integ: None,
    prf: Prf::HmacSha256,
    group: Group::Curve25519,
};
const ESP: EspSuite = EspSuite {
    encr: Encr::AesGcm16 { key_bits: 128 },
    integ: None,
    esn: false,
};

/// Where one setup is.
enum Stage {
    /// IKE_SA_INIT sent; the key pair waits for the responder's public value.
    Init { dh: KeyExchange },
    /// IKE_AUTH sent.
    Auth {
        spi_r: u64,
        init_resp: Vec<u8>,
        rx: Box<SkCipher>,
        sk_pr: Vec<u8>,
    },
    /// Between the two, while the key pair is consumed.
    Spent,
}

struct Setup {
    ni: Vec<u8>,
    init_req: Vec<u8>,
    stage: Stage,
    /// The request to resend, and where to.
    last: Vec<u8>,
    to: SocketAddrV4,
    sent_at: Instant,
    tries: u32,
    started: Instant,
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    timeouts: usize,
    cookies: usize,
    retransmits: usize,
    latencies_us: Vec<u64>,
}

/// The body of an ID payload as AUTH signs it (type, reserved, data).
fn id_body(p: &Payload) -> Vec<u8> {
    let mut b = vec![0u8; p.body_len()];
    let n = p.emit_body(&mut b).unwrap_or(0);
    b.truncate(n);
    b
}

/// The header of one of our requests (length and first payload filled in on emit).
fn request(exchange: ExchangeType, spi_i: u64, spi_r: u64, message_id: u32) -> HeaderRepr {
    HeaderRepr {
        spi_i,
        spi_r,
        next_payload: PayloadType::NONE,
        exchange,
        flags: Flags(Flags::INITIATOR),
        message_id,
        length: 0,
    }
}

fn emit(hdr: &HeaderRepr, payloads: &[Payload]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + chain_len(payloads)];
    let n = emit_message(hdr, payloads, &mut out).expect("IKE message fits");
    out.truncate(n);
    out
}

struct Gen {
    args: Args,
    rng: SystemRandom,
    sock: UdpSocket,
    idi: Payload,
    idr: Payload,
    inflight: HashMap<u64, Setup>,
    tally: Tally,
}

impl Gen {
    fn random<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill(&mut b).expect("system random");
        b
    }

    fn send(&self, data: &[u8], to: SocketAddrV4) {
        // A full socket buffer loses the datagram; retransmission covers it.
        let _ = self.sock.send_to(data, to);
    }

    fn init_request(
        &self,
        spi_i: u64,
        ni: &[u8],
        dh: &KeyExchange,
        cookie: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut p = Vec::new();
        if let Some(c) = cookie {
            p.push(Payload::Notify(Notify::status(
                NotifyType::COOKIE,
                c.to_vec(),
            )));
        }
        p.push(Payload::Sa(ike_offer(&[SUITE], None)));
        p.push(Payload::Ke {
            group: SUITE.group.id(),
            data: dh.public().to_vec(),
        });
        p.push(Payload::Nonce(ni.to_vec()));
        if self.args.behind_nat {
            // A source hash of no address: the responder sees a NAT in front of us.
            let src = self.random::<20>().to_vec();
            let dst = nat_detection_hash(spi_i, 0, self.args.server).to_vec();
            p.push(Payload::Notify(Notify::status(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                src,
            )));
            p.push(Payload::Notify(Notify::status(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                dst,
            )));
        }
        emit(&request(ExchangeType::IKE_SA_INIT, spi_i, 0, 0), &p)
    }

    /// Starts one setup.
    fn start(&mut self) {
        let spi_i = u64::from_be_bytes(self.random::<8>());
        if spi_i == 0 || self.inflight.contains_key(&spi_i) {
            return;
        }
        let ni = self.random::<32>().to_vec();
        let dh = KeyExchange::generate(SUITE.group, &self.rng).expect("key pair");
        let req = self.init_request(spi_i, &ni, &dh, None);
        self.send(&req, self.args.server);
        let now = Instant::now();
        self.inflight.insert(
            spi_i,
            Setup {
                ni,
                init_req: req.clone(),
                stage: Stage::Init { dh },
                last: req,
                to: self.args.server,
                sent_at: now,
                tries: 1,
                started: now,
            },
        );
    }

    /// One received datagram.
    fn handle(&mut self, data: &[u8]) {
        let Ok(hdr) = Header::new_checked(data) else {
            return;
        };
        if !hdr.flags().response() || hdr.flags().initiator() {
            return;
        }
        let spi_i = hdr.spi_i();
        let Some(mut s) = self.inflight.remove(&spi_i) else {
            return;
        };
        let exchange = hdr.exchange();
        let done = match s.stage {
            Stage::Init { .. } if exchange == ExchangeType::IKE_SA_INIT => {
                self.on_init(spi_i, &mut s, &hdr)
            }
            Stage::Auth { .. } if exchange == ExchangeType::IKE_AUTH => self.on_auth(&s, &hdr),
            _ => None,
        };
        match done {
            None => {
                self.inflight.insert(spi_i, s);
            }
            Some(true) => {
                self.tally.ok += 1;
                let us = u64::try_from(s.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.tally.latencies_us.push(us);
            }
            Some(false) => self.tally.failed += 1,
        }
    }

    /// IKE_SA_INIT response: a cookie to echo, or keys and IKE_AUTH.
    /// `Some(false)`: the setup failed; `None`: it goes on.
    fn on_init(&mut self, spi_i: u64, s: &mut Setup, hdr: &Header<&[u8]>) -> Option<bool> {
        let payloads = parse_chain(hdr.next_payload(), hdr.message().get(HEADER_LEN..)?).ok()?;
        let find_notify = |ty: NotifyType| {
            payloads.iter().find_map(|p| match p {
                Payload::Notify(n) if n.ty == ty => Some(n.data.clone()),
                _ => None,
            })
        };
        if let Some(cookie) = find_notify(NotifyType::COOKIE) {
            let Stage::Init { dh } = &s.stage else {
                return Some(false);
            };
            let req = self.init_request(spi_i, &s.ni, dh, Some(&cookie));
            self.send(&req, self.args.server);
            self.tally.cookies += 1;
            s.init_req = req.clone();
            s.last = req;
            s.sent_at = Instant::now();
            s.tries = 1;
            return None;
        }
        let mut ke = None;
        let mut nr = None;
        let mut sa_ok = false;
        let mut nat_answered = false;
        for p in &payloads {
            match p {
                Payload::Notify(n) if n.ty.is_error() => return Some(false),
                Payload::Ke { group, data } if *group == SUITE.group.id() => ke = Some(data),
                Payload::Nonce(n) => nr = Some(n.clone()),
                Payload::Sa(reply) => sa_ok = accepted_ike(reply, &[SUITE]) == Some(SUITE),
                Payload::Notify(n) if n.ty == NotifyType::NAT_DETECTION_SOURCE_IP => {
                    nat_answered = true
                }
                _ => {}
            }
        }
        let spi_r = hdr.spi_r();
        // Behind a (pretended) NAT the responder must have answered NAT detection.
        let nat_ok = nat_answered || !self.args.behind_nat;
        let (Some(ke), Some(nr), true, false, true) = (ke, nr, sa_ok, spi_r == 0, nat_ok) else {
            return Some(false);
        };
        let Stage::Init { dh } = std::mem::replace(&mut s.stage, Stage::Spent) else {
            return Some(false);
        };
        let Ok(g_ir) = dh.agree(ke) else {
            return Some(false);
        };
        let Ok(keys) = SUITE.derive(&s.ni, &nr, &g_ir, spi_i, spi_r) else {
            return Some(false);
        };
        let Ok((tx, rx)) = SUITE.ciphers(&keys) else {
            return Some(false);
        };
        let prf = SUITE.prf;
        let octets = signed_octets(prf, &s.init_req, &nr, &keys.sk_pi, &id_body(&self.idi));
        let child_spi = u32::from_be_bytes(self.random::<4>()) | 0x100;
        let p = vec![
            self.idi.clone(),
            self.idr.clone(),
            Payload::Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk_auth(prf, self.args.psk.as_bytes(), &octets),
            },
            Payload::Sa(esp_offer(&[ESP], child_spi, None)),
            Payload::TsI(from_nets(&[self.args.local_ts])),
            Payload::TsR(from_nets(&[self.args.remote_ts])),
        ];
        let hdr_out = request(ExchangeType::IKE_AUTH, spi_i, spi_r, 1);
        let mut iv = 0u64;
        let Some(mut req) = message::seal(hdr_out, &p, &tx, &mut iv, &self.rng, None)
            .ok()
            .and_then(|mut d| d.pop())
        else {
            return Some(false);
        };
        let mut to = self.args.server;
        if self.args.behind_nat {
            // RFC 7296 §2.23: on to port 4500, with the non-ESP marker.
            to.set_port(self.args.natt_port);
            req.splice(0..0, NON_ESP_MARKER);
        }
        self.send(&req, to);
        s.stage = Stage::Auth {
            spi_r,
            init_resp: hdr.message().to_vec(),
            rx: Box::new(rx),
            sk_pr: keys.sk_pr.clone(),
        };
        s.last = req;
        s.to = to;
        s.sent_at = Instant::now();
        s.tries = 1;
        None
    }

    /// IKE_AUTH response: the responder's AUTH and the first CHILD_SA.
    fn on_auth(&self, s: &Setup, hdr: &Header<&[u8]>) -> Option<bool> {
        let Stage::Auth {
            spi_r,
            init_resp,
            rx,
            sk_pr,
        } = &s.stage
        else {
            return Some(false);
        };
        if hdr.spi_r() != *spi_r || hdr.message_id() != 1 {
            return None;
        }
        let Ok(Opened::Complete(payloads)) = message::open(hdr, rx, &mut Reassembly::default())
        else {
            return None; // not ours or tampered: wait for a good one
        };
        let (mut idr, mut auth, mut child, mut tsi, mut tsr) = (None, None, false, false, false);
        for p in &payloads {
            match p {
                Payload::Notify(n) if n.ty.is_error() => return Some(false),
                Payload::IdR(_) => idr = Some(id_body(p)),
                Payload::Auth { method, data } if *method == AuthMethod::SHARED_KEY_MIC => {
                    auth = Some(data)
                }
                Payload::Sa(reply) => child = accepted_esp(reply, &[ESP], None).is_some(),
                Payload::TsI(t) => tsi = !t.is_empty(),
                Payload::TsR(t) => tsr = !t.is_empty(),
                _ => {}
            }
        }
        let (Some(idr), Some(auth)) = (idr, auth) else {
            return Some(false);
        };
        let prf = SUITE.prf;
        let octets = signed_octets(prf, init_resp, &s.ni, sk_pr, &idr);
        let verified = psk_verify(prf, self.args.psk.as_bytes(), &octets, auth);
        Some(verified && child && tsi && tsr)
    }

    /// Resends requests unanswered for too long; gives up after `tries`.
    fn retransmit(&mut self) {
        let rto = Duration::from_millis(self.args.retransmit_ms);
        let now = Instant::now();
        let due: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, s)| now.duration_since(s.sent_at) >= rto)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let Some(s) = self.inflight.get_mut(&k) else {
                continue;
            };
            if s.tries >= self.args.tries {
                self.inflight.remove(&k);
                self.tally.timeouts += 1;
                continue;
            }
            s.tries += 1;
            s.sent_at = now;
            let (data, to) = (s.last.clone(), s.to);
            self.tally.retransmits += 1;
            self.send(&data, to);
        }
    }
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    // `cargo bench` runs every bench target with `--bench` alone: this one
    // needs a responder, which bench/ike_setup_rate.sh sets up.
    if std::env::args().skip(1).all(|a| a == "--bench") {
        println!("ike_load: the load generator of bench/ike_setup_rate.sh (needs --server)");
        return;
    }
    let args = Args::parse();
    let sock = UdpSocket::bind(args.bind).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("socket timeout");
    let mut g = Gen {
        idi: Payload::IdI(Identification::fqdn(&args.id)),
        idr: Payload::IdR(Identification::fqdn(&args.peer_id)),
        args,
        rng: SystemRandom::new(),
        sock,
        inflight: HashMap::new(),
        tally: Tally::default(),
    };
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(g.args.deadline_secs);
    let mut started = 0usize;
    let mut last_scan = t0;
    let mut buf = vec![0u8; 65536];
    loop {
        let finished = g.tally.ok + g.tally.failed + g.tally.timeouts;
        if finished >= g.args.count || Instant::now() >= deadline {
            break;
        }
        while g.inflight.len() < g.args.window && started < g.args.count {
            g.start();
            started += 1;
        }
        // Drain what arrived, then look at timers.
        for _ in 0..256 {
            match g.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let mut d = &buf[..n];
                    if from.port() == g.args.natt_port {
                        // From the NAT-T port: IKE behind the non-ESP marker.
                        match d.strip_prefix(&NON_ESP_MARKER) {
                            Some(ike) => d = ike,
                            None => continue,
                        }
                    }
                    let d = d.to_vec();
                    g.handle(&d);
                    if g.inflight.len() < g.args.window / 2 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if last_scan.elapsed() >= Duration::from_millis(50) {
            g.retransmit();
            last_scan = Instant::now();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let t = &mut g.tally;
    t.latencies_us.sort_unstable();
    println!(
        "ok={} failed={} timeouts={} unfinished={} cookies={} retransmits={} secs={:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2} gen_cpu_secs={:.3}",
        t.ok,
        t.failed,
        t.timeouts,
        g.inflight.len(),
        t.cookies,
        t.retransmits,
        secs,
        t.ok as f64 / secs,
        percentile(&t.latencies_us, 0.5),
        percentile(&t.latencies_us, 0.99),
        cpu
    );
}
