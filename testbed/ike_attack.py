#!/usr/bin/env python3
"""Hostile and broken IKEv2 input against an IKE responder (tests/e2e_ike_attacks.rs).

An independent minimal IKEv2 initiator (RFC 7296; AES-GCM-16-128, PRF
HMAC-SHA2-256, x25519, PSK) built with struct packing and the `cryptography`
package, so it can also send what a real initiator never would.

usage:
  ike_attack.py hostile  --dst IP --id ID --psk PSK
      malformed/truncated datagrams to UDP 500 and 4500, unknown critical and
      non-critical payloads, bad SK integrity, stale message IDs, then a full
      IKE_AUTH; checks every answer; prints JSON with the drops expected by reason.
  ike_attack.py wrongpsk --dst IP --id ID --psk PSK
      IKE_SA_INIT, then IKE_AUTH with this (wrong) key; checks the protected
      answer is AUTHENTICATION_FAILED alone (RFC 7296 §2.21.2).
  ike_attack.py flood    --dst IP --iface IF --net CIDR --rate PPS --min N --max N --stop FILE
      IKE_SA_INIT from spoofed sources in CIDR (raw socket) until FILE exists
      (after at least --min, at most --max requests); sniffs the answers on IF.
  ike_attack.py echo     --dst IP --iface IF --net CIDR --count N
      a non-blind attacker: spoofed IKE_SA_INIT, then each COOKIE it sees echoed
      back from the same source.
Exit status 1 with a message when the responder answered wrongly.
"""
import argparse, hashlib, hmac, ipaddress, json, os, random, select, socket, struct, sys, threading, time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

# RFC 7296 numbers.
IKE_SA_INIT, IKE_AUTH, INFORMATIONAL = 34, 35, 37
F_INITIATOR, F_RESPONSE = 0x08, 0x20
PT_NONE, PT_SA, PT_KE, PT_IDI, PT_IDR, PT_AUTH, PT_NONCE, PT_N, PT_D, PT_TSI, PT_TSR, PT_SK = (
    0, 33, 34, 35, 36, 39, 40, 41, 42, 44, 45, 46)
N_UNSUPPORTED_CRITICAL, N_INVALID_SYNTAX, N_NO_PROPOSAL, N_AUTH_FAILED, N_COOKIE = 1, 7, 14, 24, 16390
NAMES = {N_UNSUPPORTED_CRITICAL: "UNSUPPORTED_CRITICAL_PAYLOAD", N_INVALID_SYNTAX: "INVALID_SYNTAX",
         N_NO_PROPOSAL: "NO_PROPOSAL_CHOSEN", N_AUTH_FAILED: "AUTHENTICATION_FAILED"}
SO_RCVBUFFORCE = 33  # not in Python's socket module
MARKER = b"\x00\x00\x00\x00"  # non-ESP marker on UDP 4500 (RFC 3948)
QUIET = 0.5  # seconds without an answer before messages count as dropped


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ---- encoding ----------------------------------------------------------------

def header(spi_i, spi_r, nxt, exch, flags, mid, length, version=0x20):
    return struct.pack("!QQBBBBII", spi_i, spi_r, nxt, version, exch, flags, mid, length)


def chain(payloads):
    """[(type, body, critical)] -> (first type, bytes)."""
    out = b""
    for i, (ty, body, crit) in enumerate(payloads):
        nxt = payloads[i + 1][0] if i + 1 < len(payloads) else PT_NONE
        out += struct.pack("!BBH", nxt, 0x80 if crit else 0, 4 + len(body)) + body
    return (payloads[0][0] if payloads else PT_NONE), out


def message(spi_i, spi_r, exch, flags, mid, payloads, version=0x20):
    first, body = chain(payloads)
    return header(spi_i, spi_r, first, exch, flags, mid, 28 + len(body), version) + body


def parse_chain(first, buf):
    """-> [(type, critical, body)]; raises Fail on a broken chain."""
    out, ty, at = [], first, 0
    while ty != PT_NONE:
        check(at + 4 <= len(buf), "payload header truncated")
        nxt, crit, ln = struct.unpack_from("!BBH", buf, at)
        check(ln >= 4 and at + ln <= len(buf), "payload length")
        out.append((ty, bool(crit & 0x80), buf[at + 4:at + ln]))
        if ty == PT_SK:
            out[-1] = (ty, nxt, buf[at + 4:at + ln])  # the SK's next = first inner type
            break
        ty, at = nxt, at + ln
    return out


def transform(ttype, tid, keylen=None, last=False):
    attrs = struct.pack("!HH", 0x800E, keylen) if keylen else b""
    return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs


def proposal(num, proto, spi, transforms, last=True):
    body = struct.pack("!BBBB", num, proto, len(spi), len(transforms)) + spi + b"".join(transforms)
    return struct.pack("!BBH", 0 if last else 2, 0, 4 + len(body)) + body


IKE_SA_BODY = proposal(1, 1, b"", [transform(1, 20, 128), transform(2, 5), transform(4, 31, last=True)])
# 3DES + HMAC-SHA1 + MODP-1024: nothing spimux accepts.
WEAK_SA_BODY = proposal(1, 1, b"", [transform(1, 3), transform(2, 2), transform(3, 2), transform(4, 2, last=True)])


def esp_sa_body(spi):
    return proposal(1, 3, struct.pack("!I", spi), [transform(1, 20, 128), transform(5, 0, last=True)])


def ts_body(net):
    n = ipaddress.ip_network(net)
    sel = struct.pack("!BBHHH", 7, 0, 16, 0, 65535) + n.network_address.packed + n.broadcast_address.packed
    return struct.pack("!B3x", 1) + sel


def notify_body(ntype, data=b""):
    return struct.pack("!BBH", 0, 0, ntype) + data


def notifies(payloads):
    return [(struct.unpack_from("!H", b, 2)[0], b[4 + b[1]:]) for ty, _, b in payloads if ty == PT_N and len(b) >= 4]


# ---- crypto (RFC 7296 §2.13-2.15, RFC 5282) ---------------------------------

def prf(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def prf_plus(key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(key, t + seed + bytes([i]))
        out, i = out + t, i + 1
    return out[:n]


def psk_auth(psk, octets):
    return prf(prf(psk, b"Key Pad for IKEv2"), octets)


def request_for(spi, ni, pub, cookie=None, extra=()):
    """IKE_SA_INIT request offering AES-GCM-16-128, PRF-HMAC-SHA2-256, x25519."""
    p = [(PT_N, notify_body(N_COOKIE, cookie), False)] if cookie else []
    p += [(PT_SA, IKE_SA_BODY, False), (PT_KE, struct.pack("!HH", 31, 0) + pub, False), (PT_NONCE, ni, False)]
    return message(spi, 0, IKE_SA_INIT, F_INITIATOR, 0, p + list(extra))


class Sa:
    """One IKE SA of ours (initiator side)."""

    def __init__(self, ep, natt=False, extra=(), ni=None):
        self.ep, self.natt = ep, natt
        self.spi_i = random.getrandbits(64) | 1
        self.spi_r = 0
        self.dh = X25519PrivateKey.generate()
        self.ni = ni or os.urandom(32)
        self.extra = list(extra)
        self.next_id = 1

    def init_request(self):
        pub = self.dh.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.init_req = request_for(self.spi_i, self.ni, pub, extra=self.extra)
        return self.init_req

    def complete_init(self, resp, payloads):
        """Derives the keys from the responder's IKE_SA_INIT answer."""
        self.init_resp = resp
        self.spi_r = struct.unpack_from("!Q", resp, 8)[0]
        ke = [b for t, _, b in payloads if t == PT_KE]
        nr = [b for t, _, b in payloads if t == PT_NONCE]
        check(ke and nr and self.spi_r, f"IKE_SA_INIT answer has SA, KE, Nr: {describe(payloads)}")
        check(struct.unpack_from("!H", ke[0])[0] == 31, "x25519 chosen")
        self.nr = nr[0]
        g_ir = self.dh.exchange(X25519PublicKey.from_public_bytes(ke[0][4:]))
        skeyseed = prf(self.ni + self.nr, g_ir)
        k = prf_plus(skeyseed, self.ni + self.nr + struct.pack("!QQ", self.spi_i, self.spi_r), 32 + 20 + 20 + 32 + 32)
        self.sk_d, self.sk_ei, self.sk_er, self.sk_pi, self.sk_pr = k[:32], k[32:52], k[52:72], k[72:104], k[104:136]

    def seal(self, exch, mid, payloads, response=False):
        """A protected message (SK payload, AES-GCM-16: IV | ciphertext | ICV)."""
        first, inner = chain(payloads)
        plain = inner + b"\x00"  # no padding, pad length 0
        iv = os.urandom(8)
        sk_len = 4 + 8 + len(plain) + 16
        flags = F_INITIATOR | (F_RESPONSE if response else 0)
        hdr = header(self.spi_i, self.spi_r, PT_SK, exch, flags, mid, 28 + sk_len)
        sk_hdr = struct.pack("!BBH", first, 0, sk_len)
        ct = AESGCM(self.sk_ei[:16]).encrypt(self.sk_ei[16:] + iv, plain, hdr + sk_hdr)
        return hdr + sk_hdr + iv + ct

    def open(self, msg):
        """Decrypts a protected answer -> (header fields, payloads)."""
        check(len(msg) >= 32, "protected answer too short")
        spi_i, spi_r, nxt, _, exch, flags, mid, ln = struct.unpack_from("!QQBBBBII", msg)
        check(nxt == PT_SK and ln == len(msg), "answer is one SK payload")
        inner_first, _, sk_len = struct.unpack_from("!BBH", msg, 28)
        iv, ct = msg[32:40], msg[40:28 + sk_len]
        plain = AESGCM(self.sk_er[:16]).decrypt(self.sk_er[16:] + iv, ct, msg[:32])
        pad = plain[-1]
        return (exch, flags, mid), parse_chain(inner_first, plain[:len(plain) - 1 - pad])

    def id_body(self, ident):
        return struct.pack("!B3x", 2) + ident.encode()

    def auth_request(self, ident, psk, child=True, extra=()):
        idb = self.id_body(ident)
        octets = self.init_req + self.nr + prf(self.sk_pi, idb)
        p = [(PT_IDI, idb, False), (PT_AUTH, struct.pack("!B3x", 2) + psk_auth(psk.encode(), octets), False)]
        if child:
            self.esp_spi = random.randrange(256, 1 << 32)
            p += [(PT_SA, esp_sa_body(self.esp_spi), False), (PT_TSI, ts_body(self.ep.inner), False),
                  (PT_TSR, ts_body(self.ep.remote_net), False)]
        return self.seal(IKE_AUTH, 1, p + list(extra))

    def verify_responder_auth(self, payloads, psk):
        idr = [b for t, _, b in payloads if t == PT_IDR]
        auth = [b for t, _, b in payloads if t == PT_AUTH]
        check(idr and auth, f"IKE_AUTH answer has IDr and AUTH: {describe(payloads)}")
        octets = self.init_resp + self.ni + prf(self.sk_pr, idr[0])
        check(auth[0][0] == 2 and auth[0][4:] == psk_auth(psk.encode(), octets), "responder's AUTH verifies")


def describe(payloads):
    names = {PT_SA: "SA", PT_KE: "KE", PT_NONCE: "N(nonce)", PT_IDR: "IDr", PT_AUTH: "AUTH", PT_TSI: "TSi",
             PT_TSR: "TSr", PT_D: "D"}
    out = []
    for t, _, b in payloads:
        if t == PT_N and len(b) >= 4:
            out.append(f"N({struct.unpack_from('!H', b, 2)[0]})")
        else:
            out.append(names.get(t, str(t)))
    return out


# ---- transport ---------------------------------------------------------------

class Endpoint:
    def __init__(self, dst, inner="10.98.0.9/32", remote_net="10.99.0.0/24"):
        self.dst, self.inner, self.remote_net = dst, inner, remote_net
        self.s500 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s4500 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.s500, self.s4500):
            s.bind(("0.0.0.0", 0))
        self.unanswered = []  # sent, must stay unanswered (checked together by `quiet`)

    def send(self, data, natt=False):
        if natt:
            self.s4500.sendto(MARKER + data, (self.dst, 4500))
        else:
            self.s500.sendto(data, (self.dst, 500))

    def recv(self, natt=False, timeout=QUIET):
        """The next IKE message from the responder, or None."""
        s = self.s4500 if natt else self.s500
        s.settimeout(timeout)
        try:
            data, src = s.recvfrom(65535)
        except socket.timeout:
            return None
        check(src == (self.dst, 4500 if natt else 500), f"answer from {src}")
        if natt:
            check(data[:4] == MARKER, "answer on 4500 carries the non-ESP marker")
            data = data[4:]
        return data

    def exchange(self, data, natt=False):
        self.quiet()
        self.send(data, natt)
        r = self.recv(natt, timeout=3)
        check(r is not None, "the responder answered")
        return r

    def silent(self, data, natt=False, what="", marker=True):
        """Sends a message that must be dropped; `quiet` checks it was."""
        if natt and not marker:
            self.s4500.sendto(data, (self.dst, 4500))
        else:
            self.send(data, natt)
        self.unanswered.append(what)

    def quiet(self):
        """Asserts nothing answered the messages sent with `silent`."""
        if not self.unanswered:
            return
        r, _, _ = select.select([self.s500, self.s4500], [], [], QUIET)
        check(not r, f"dropped without an answer: one of {self.unanswered} was answered")
        self.unanswered.clear()


def unprotected(resp):
    check(len(resp) >= 28, "answer has a header")
    spi_i, spi_r, nxt, ver, exch, flags, mid, ln = struct.unpack_from("!QQBBBBII", resp)
    check(ver == 0x20 and ln == len(resp), "answer header")
    return (spi_i, spi_r, exch, flags, mid), parse_chain(nxt, resp[28:])


def init(ep, natt=False, extra=()):
    """IKE_SA_INIT done: an SA with keys."""
    sa = Sa(ep, natt, extra)
    resp = ep.exchange(sa.init_request(), natt)
    (spi_i, _, exch, flags, mid), p = unprotected(resp)
    check(spi_i == sa.spi_i and exch == IKE_SA_INIT and flags & F_RESPONSE and mid == 0, "IKE_SA_INIT answer")
    sa.complete_init(resp, p)
    return sa


def expect_only_notify(payloads, ntype, data=None, what=""):
    check(len(payloads) == 1 and notifies(payloads) and notifies(payloads)[0][0] == ntype,
          f"{what}: answer is N({ntype}) alone, got {describe(payloads)}")
    if data is not None:
        check(notifies(payloads)[0][1] == data, f"{what}: notify data {notifies(payloads)[0][1]!r}")


# ---- scenarios ---------------------------------------------------------------

def hostile(a):
    ep = Endpoint(a.dst)
    drops = {}
    answered = {}

    def dropped(reason, data, natt=False, what=""):
        ep.silent(data, natt, what or reason)
        drops[reason] = drops.get(reason, 0) + 1

    # Broken datagrams on both IKE ports.
    good = Sa(ep).init_request()
    for natt in (False, True):
        garbage = bytearray(os.urandom(64))
        garbage[24:28] = b"\xde\xad\xbe\xef"
        dropped("malformed", bytes(garbage), natt, "random bytes")
        dropped("malformed", os.urandom(11), natt, "shorter than a header")
        dropped("malformed", good[:27], natt, "truncated header")
        dropped("malformed", good[:-10], natt, "length beyond the datagram")
        short = bytearray(good); short[24:28] = struct.pack("!I", 20)
        dropped("malformed", bytes(short), natt, "length below a header")
        cut = bytearray(good[:-10]); cut[24:28] = struct.pack("!I", len(cut))
        dropped("malformed", bytes(cut), natt, "last payload truncated")
        bad_len = bytearray(good); bad_len[30:32] = struct.pack("!H", 2)
        dropped("malformed", bytes(bad_len), natt, "payload length below its header")
        long_len = bytearray(good); long_len[30:32] = struct.pack("!H", 4000)
        dropped("malformed", bytes(long_len), natt, "payload length beyond the message")
        spi_r = bytearray(good); spi_r[8:16] = os.urandom(8)
        dropped("malformed", bytes(spi_r), natt, "IKE_SA_INIT request with a responder SPI")
        for version in (0x10, 0x30):
            v = bytearray(good); v[17] = version
            dropped("bad_version", bytes(v), natt, f"version {version:#x}")
        mid = bytearray(good); mid[20:24] = struct.pack("!I", 1)
        dropped("message_id", bytes(mid), natt, "IKE_SA_INIT with message ID 1")
        stray = message(random.getrandbits(64) | 1, random.getrandbits(64) | 1, INFORMATIONAL, F_INITIATOR, 5,
                        [(PT_SK, os.urandom(40), False)])
        dropped("unknown_spi", stray, natt, "request for an unknown IKE SA")
        resp = bytearray(good); resp[19] = F_RESPONSE
        dropped("unknown_spi", bytes(resp), natt, "IKE_SA_INIT response nobody asked for")
    dropped("malformed", MARKER, True, "non-ESP marker alone")
    # Not IKE, not ESP on 4500: the UDP loop drops them before the IKE thread.
    tunnel = 0
    for junk, what in ((b"\x01\x02\x03", "3 bytes"), (b"\x00\x00\x00\x01" + os.urandom(20), "SPI 1")):
        ep.silent(junk, True, f"{what} on 4500", marker=False)
        tunnel += 1

    # Answered without creating state: missing KE, nothing acceptable, unknown critical payload.
    def answered_with(ntype, data, natt, what, expect=None):
        (_, spi_r, exch, flags, _), p = unprotected(ep.exchange(data, natt))
        check(spi_r == 0 and exch == IKE_SA_INIT and flags & F_RESPONSE, f"{what}: unprotected answer, no SPIr")
        expect_only_notify(p, ntype, expect, what)
        answered[ntype] = answered.get(ntype, 0) + 1

    for natt in (False, True):
        s = Sa(ep)
        no_ke = message(s.spi_i, 0, IKE_SA_INIT, F_INITIATOR, 0, [(PT_SA, IKE_SA_BODY, False), (PT_NONCE, s.ni, False)])
        answered_with(N_INVALID_SYNTAX, no_ke, natt, "no KE payload")
        weak = message(s.spi_i ^ 2, 0, IKE_SA_INIT, F_INITIATOR, 0,
                       [(PT_SA, WEAK_SA_BODY, False), (PT_KE, struct.pack("!HH", 2, 0) + os.urandom(128), False),
                        (PT_NONCE, s.ni, False)])
        answered_with(N_NO_PROPOSAL, weak, natt, "only 3DES/SHA1/MODP-1024 offered")
        crit = Sa(ep, extra=[(200, b"hostile", True)]).init_request()
        answered_with(N_UNSUPPORTED_CRITICAL, crit, natt, "unknown critical payload", bytes([200]))

    # A non-critical unknown payload is ignored: the handshake proceeds.
    sa = init(ep, extra=[(201, b"ignore me", False), (43, b"some vendor id", False)])
    # Bad SK integrity on a half-open SA: silently dropped (RFC 7296 §2.21.1).
    good_auth = sa.auth_request(a.id, a.psk)
    for at, what in ((len(good_auth) - 20, "ciphertext byte flipped"), (len(good_auth) - 1, "ICV byte flipped"),
                     (34, "IV byte flipped")):
        bad = bytearray(good_auth); bad[at] ^= 0x01
        dropped("integrity", bytes(bad), what=what)
    short_sk = bytearray(good_auth[:28 + 4 + 10]); short_sk[24:28] = struct.pack("!I", 42); short_sk[30:32] = struct.pack("!H", 14)
    dropped("malformed", bytes(short_sk), what="SK payload shorter than IV + ICV")
    # ... and the SA is unaffected: the real IKE_AUTH still works.
    (exch, flags, mid), p = sa.open(ep.exchange(good_auth))
    check(exch == IKE_AUTH and flags & F_RESPONSE and mid == 1, "IKE_AUTH answer header")
    sa.verify_responder_auth(p, a.psk)
    check(not [n for n, _ in notifies(p) if n < 16384], f"no error in IKE_AUTH answer: {describe(p)}")
    check(any(t == PT_SA for t, _, _ in p), "CHILD_SA accepted")
    # Established: integrity failures, a stale message ID, an unknown critical
    # payload inside SK; the SA keeps answering.
    info = sa.seal(INFORMATIONAL, 2, [])
    bad = bytearray(info); bad[-3] ^= 0x80
    dropped("integrity", bytes(bad), what="INFORMATIONAL with a flipped ICV")
    (exch, flags, mid), p = sa.open(ep.exchange(info))
    check(exch == INFORMATIONAL and mid == 2 and p == [], f"empty INFORMATIONAL answered: {describe(p)}")
    crit = sa.seal(INFORMATIONAL, 3, [(202, b"must understand", True)])
    (exch, flags, mid), p = sa.open(ep.exchange(crit))
    check(mid == 3, "answer to message 3")
    expect_only_notify(p, N_UNSUPPORTED_CRITICAL, bytes([202]), "unknown critical payload inside SK")
    answered[N_UNSUPPORTED_CRITICAL] += 1
    dropped("message_id", sa.seal(INFORMATIONAL, 2, []), what="message ID already used (not the last)")
    dropped("message_id", sa.seal(INFORMATIONAL, 9, []), what="message ID ahead of the window")
    (exch, flags, mid), p = sa.open(ep.exchange(sa.seal(INFORMATIONAL, 4, [])))
    check(mid == 4 and p == [], "the SA still answers")

    # An unknown critical payload in IKE_AUTH: answered, the half-open SA ends.
    sa2 = init(ep, natt=True)
    (exch, flags, mid), p = sa2.open(ep.exchange(sa2.auth_request(a.id, a.psk, extra=[(203, b"x", True)]), True))
    expect_only_notify(p, N_UNSUPPORTED_CRITICAL, bytes([203]), "unknown critical payload in IKE_AUTH")
    answered[N_UNSUPPORTED_CRITICAL] += 1
    dropped("unknown_spi", sa2.auth_request(a.id, a.psk), True, "IKE_AUTH for the SA that ended")
    out = {f"drop.{k}": v for k, v in drops.items()}
    out.update({f"sent.{NAMES[k]}": v for k, v in answered.items()})
    out["tunnel.outer_malformed"] = tunnel
    ep.quiet()
    print(json.dumps(out))


def wrongpsk(a):
    ep = Endpoint(a.dst)
    sa = init(ep)
    (exch, flags, mid), p = sa.open(ep.exchange(sa.auth_request(a.id, a.psk)))
    check(exch == IKE_AUTH and flags & F_RESPONSE and mid == 1, "IKE_AUTH answer header")
    expect_only_notify(p, N_AUTH_FAILED, None, "wrong PSK")
    # The responder forgot the SA.
    ep.silent(sa.seal(INFORMATIONAL, 2, []), what="request on the failed SA")
    ep.quiet()
    print(json.dumps({"sent.AUTHENTICATION_FAILED": 1, "drop.unknown_spi": 1}))


# ---- flood -------------------------------------------------------------------

def ip_udp(src, sport, dst, dport, payload):
    """IPv4/UDP for a raw socket (the kernel fills the IP checksum; UDP checksum 0)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return iph + udp + payload


class Sniffer(threading.Thread):
    """Reads the responder's IKE_SA_INIT answers on an interface."""

    def __init__(self, iface, responder, net):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        # Past rmem_max (we are root): no answer lost while Python is busy sending.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.bind((iface, 0))
        self.sock.settimeout(0.2)
        self.responder = socket.inet_aton(responder)
        self.stopping = False
        self.lock = threading.Lock()
        self.cookies = {}  # (dst ip, dst port, spi_i) -> cookie
        self.net = ipaddress.ip_network(net)
        # Answers to the spoofed sources, and to anyone else (honest clients).
        self.counts = {k: 0 for k in ("spoofed_cookie", "spoofed_sa", "spoofed_other",
                                      "other_cookie", "other_sa", "other_other")}

    def run(self):
        while not self.stopping:
            try:
                f = self.sock.recv(65535)
            except socket.timeout:
                continue
            ip = f[14:]
            if len(ip) < 20 + 8 + 28 or ip[9] != 17 or ip[12:16] != self.responder:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack_from("!HH", ip, ihl)
            if sport != 500:
                continue
            ike = ip[ihl + 8:]
            try:
                (spi_i, _, exch, flags, _), p = unprotected(ike)
            except Fail:
                continue
            if exch != IKE_SA_INIT or not flags & F_RESPONSE:
                continue
            dst = socket.inet_ntoa(ip[16:20])
            c = [d for n, d in notifies(p) if n == N_COOKIE]
            who = "spoofed" if ipaddress.ip_address(dst) in self.net else "other"
            what = "cookie" if c else "sa" if any(t == PT_SA for t, _, _ in p) else "other"
            with self.lock:
                self.counts[f"{who}_{what}"] += 1
                if c:
                    self.cookies[(dst, dport, spi_i)] = c[0]


def spoofed_sources(net):
    hosts = list(ipaddress.ip_network(net).hosts())
    while True:
        yield str(random.choice(hosts)), random.randrange(1024, 65536)


def spoofer(a):
    """A raw socket, a running sniffer, one x25519 public value, spoofed sources."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sniff = Sniffer(a.iface, a.dst, a.net)
    sniff.start()
    pub = X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                serialization.PublicFormat.Raw)
    return raw, sniff, pub, spoofed_sources(a.net)


def flood(a):
    raw, sniff, pub, src = spoofer(a)
    sent, t0, batch = 0, time.monotonic(), max(1, a.rate // 100)
    while sent < a.max and not (sent >= a.min and os.path.exists(a.stop)):
        for _ in range(batch):
            ip, port = next(src)
            msg = request_for(random.getrandbits(64) | 1, os.urandom(32), pub)
            raw.sendto(ip_udp(ip, port, a.dst, 500, msg), (a.dst, 0))
        sent += batch
        # Hold the rate: sleep until the time this many packets are due.
        ahead = sent / a.rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    secs = time.monotonic() - t0
    time.sleep(0.5)  # the last answers
    sniff.stopping = True
    sniff.join()
    print(json.dumps({"sent": sent, "secs": round(secs, 1), **sniff.counts}))


def echo(a):
    """Spoofed requests, then the same requests again with the cookie each got."""
    raw, sniff, pub, src = spoofer(a)
    reqs = []
    for _ in range(a.count):
        ip, port = next(src)
        spi, ni = random.getrandbits(64) | 1, os.urandom(32)
        reqs.append((ip, port, spi, ni))
        raw.sendto(ip_udp(ip, port, a.dst, 500, request_for(spi, ni, pub)), (a.dst, 0))
        time.sleep(0.001)
    time.sleep(1)
    with sniff.lock:
        cookies = dict(sniff.cookies)
        before = dict(sniff.counts)
    echoed = 0
    for ip, port, spi, ni in reqs:
        c = cookies.get((ip, port, spi))
        if c is not None:
            raw.sendto(ip_udp(ip, port, a.dst, 500, request_for(spi, ni, pub, c)), (a.dst, 0))
            echoed += 1
            time.sleep(0.002)
    time.sleep(1)
    sniff.stopping = True
    sniff.join()
    print(json.dumps({"requests": a.count, "cookies": before["spoofed_cookie"], "sa_before": before["spoofed_sa"],
                      "echoed": echoed, "accepted": sniff.counts["spoofed_sa"] - before["spoofed_sa"]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hostile", "wrongpsk", "flood", "echo"])
    ap.add_argument("--dst", required=True)
    ap.add_argument("--id", default="probe")
    ap.add_argument("--psk", default="")
    ap.add_argument("--iface")
    ap.add_argument("--net")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--min", type=int, default=5000)
    ap.add_argument("--max", type=int, default=40000)
    ap.add_argument("--stop", default="/nonexistent")
    ap.add_argument("--count", type=int, default=200)
    a = ap.parse_args()
    try:
        {"hostile": hostile, "wrongpsk": wrongpsk, "flood": flood, "echo": echo}[a.mode](a)
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
