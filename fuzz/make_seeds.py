#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/seeds/ (except ike_message,
whose seeds are checked by src/wire/ike/tests/vector.rs). Deterministic:
re-running rewrites the same files. Packets are those of the unit tests and
the testbed (addresses 10.x, 198.51.100.0/24, 203.0.113.0/24); configs are
the shipped ones under config/ and tests/data/endpoint/.

    python3 fuzz/make_seeds.py
"""
import os
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ipv4(src, dst, proto, payload, ttl=64, ident=0x1234, flags=0x4000, options=b""):
    hl = 20 + len(options)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), ident, flags,
                    ttl, proto, 0, ip(src), ip(dst)) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def pseudo(src, dst, proto, n):
    return ip(src) + ip(dst) + struct.pack("!BBH", 0, proto, n)


def udp(src, sport, dst, dport, data, zero_csum=False):
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    if not zero_csum:
        c = csum(pseudo(src, dst, 17, len(u)) + u) or 0xFFFF
        u = u[:6] + struct.pack("!H", c) + u[8:]
    return u


def tcp(src, sport, dst, dport, flags, data=b"", options=b""):
    off = (20 + len(options)) // 4
    t = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, off << 4, flags, 0xFFFF, 0, 0) + options + data
    c = csum(pseudo(src, dst, 6, len(t)) + t)
    return t[:16] + struct.pack("!H", c) + t[18:]


def icmp(ty, code, rest, body):
    m = struct.pack("!BBH", ty, code, 0) + rest + body
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def echo(ident=0x0102, seq=1, reply=False):
    return icmp(0 if reply else 8, 0, struct.pack("!HH", ident, seq), b"ping")


def eth(dst, src, ty, payload):
    return bytes(dst) + bytes(src) + struct.pack("!H", ty) + payload


H1, GW, PEER = "10.6.1.2", "10.6.1.1", "198.51.100.69"
PUB = "203.0.113.10"
MAC1, MAC2, BCAST = [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [0xFF] * 6

ARP_REQ = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes(MAC2), ip(H1), bytes(6), ip(GW))
ARP_REP = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, bytes(MAC1), ip(GW), bytes(MAC2), ip(H1))
PING = ipv4(H1, PEER, 1, echo())
UDP_DNS = ipv4(H1, PEER, 17, udp(H1, 12345, PEER, 53, b"ping"))
SYN = ipv4(H1, PEER, 6, tcp(H1, 50000, PEER, 80, 0x02, options=b"\x02\x04\x05\xb4"))
ESP = ipv4(H1, PEER, 50, struct.pack("!II", 0xD4560CA1, 7) + bytes(range(48)))
TTL_EXCEEDED = ipv4(PUB, PEER, 1, icmp(11, 0, bytes(4), UDP_DNS[:28]))
FRAG_NEEDED = ipv4(PEER, PUB, 1, icmp(3, 4, struct.pack("!HH", 0, 1400), SYN[:28]))
ECHO_QUOTE = icmp(3, 1, bytes(4), PING[:28])
WITH_OPTIONS = ipv4(H1, PEER, 17, udp(H1, 1, PEER, 2, b"x"), options=b"\x94\x04\x00\x00")  # router alert
FRAGMENT = ipv4(H1, PEER, 17, udp(H1, 1, PEER, 2, b"x" * 16), flags=0x2000)

# Registration messages (src/wire/mobility.rs tests, docs/MOBILITY.md).
RREQ = bytes([1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 4, 10, 98, 0, 5,
              2, 13, 1, 10, 77, 0, 2, 198, 51, 100, 69, 0x11, 0x94, 0x11, 0x94, 3, 1, 0b011])
RREP = bytes([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
              4, 13, 1, 203, 0, 113, 66, 198, 51, 100, 69, 0x04, 0x00, 0x11, 0x94,
              5, 1, 3, 6, 1, 1, 7, 2, 0, 20])
RREP_STALE = bytes([1, 2, 64, 0, 0, 0, 0, 0, 0, 0, 0, 7,
                    4, 13, 0, 10, 77, 0, 2, 198, 51, 100, 69, 0, 0, 0, 0,
                    5, 1, 0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 9])


def vnet(flags, gso, hdr_len, size, start, off):
    return struct.pack("<BBHHHH", flags, gso, hdr_len, size, start, off)


def words(*xs):
    return b"".join(struct.pack("<Q", x) for x in xs)


def read(rel):
    return (ROOT / rel).read_bytes()


def ike_doc(rel, peer_index=0):
    """[ike] and the n-th [peers.ike] of a shipped config, as config_ike reads them."""
    text = read(rel).decode()
    lines, section, peers, out_ike, out_peer = text.splitlines(), None, -1, [], []
    for line in lines:
        s = line.strip()
        if s.startswith("["):
            section = s
            if s == "[[peers]]":
                peers += 1
            continue
        if section == "[ike]":
            out_ike.append(line)
        elif section == "[peers.ike]" and peers == peer_index:
            out_peer.append(line)
    return ("[ike]\n" + "\n".join(out_ike) + "\n[peer]\n" + "\n".join(out_peer) + "\n").encode()


ROUTER_MIN = b"""[inside]
interface = "in0"
address = "10.6.1.1/24"
[outside]
interface = "out0"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
[[routes]]
prefix = "10.7.0.0/16"
via = "10.6.1.254"
[dataplane]
backend = "pnet"
disable_offloads = true
"""

SEEDS_BY_TARGET = {
    "wire_ethernet": {
        "arp_request": eth(BCAST, MAC2, 0x0806, ARP_REQ),
        "ipv4_ping": eth(MAC1, MAC2, 0x0800, PING),
        "vlan": eth(MAC1, MAC2, 0x8100, b"\x00\x05\x08\x00" + PING),
    },
    "wire_arp": {"request": ARP_REQ, "reply": ARP_REP, "padded": ARP_REQ + bytes(18)},
    "wire_ipv4": {
        "ping": PING, "udp": UDP_DNS, "syn": SYN, "esp": ESP, "options": WITH_OPTIONS,
        "fragment": FRAGMENT, "ttl_exceeded": TTL_EXCEEDED, "padded": PING + bytes(10),
        "ttl1": ipv4(H1, PEER, 1, echo(), ttl=1),
    },
    "wire_icmp": {
        "echo_request": echo(), "echo_reply": echo(reply=True),
        "time_exceeded_udp": TTL_EXCEEDED[20:], "frag_needed_tcp": FRAG_NEEDED[20:],
        "unreachable_echo": ECHO_QUOTE,
    },
    "wire_tcp": {
        "syn_mss": ip(H1) + ip(PEER) + SYN[20:],
        "ack_data": ip(PEER) + ip(PUB) + tcp(PEER, 80, PUB, 61000, 0x18, b"HTTP/1.1 200 OK\r\n"),
    },
    "wire_udp": {
        "dns": ip(H1) + ip(PEER) + UDP_DNS[20:],
        "no_checksum": ip(H1) + ip(PEER) + udp(H1, 4500, PEER, 4500, b"\xff", zero_csum=True),
    },
    "wire_esp": {"esp": ESP[20:], "reserved_spi": struct.pack("!II", 255, 1)},
    "udp4500": {
        "keepalive": b"\xff",
        "ike": bytes(4) + read("fuzz/seeds/ike_message/ike_sa_init_req.bin")[:64],
        "esp": ESP[20:],
        "timer": struct.pack("!II", 0x759346E0, 1) + words(20_000, 0, 19_999, 20_000, 30_000, 50_000),
    },
    "mobility_message": {
        "rreq": RREQ, "rrep_accepted": RREP, "rrep_stale": RREP_STALE,
        "rreq_skippable_tlv": RREQ + bytes([200, 3, 9, 9, 9]),
    },
    "offload": {
        "plain": vnet(0, 0, 0, 0, 0, 0) + struct.pack("<I", 1400),
        "partial_csum": vnet(1, 0, 42, 0, 34, 6),
        "udp_gso": vnet(1, 5, 42, 1420, 34, 6) + struct.pack("<II", 1420 * 45 + 10, 0),
        "tcp_gso_ecn": vnet(1, 0x81, 66, 1448, 34, 16) + struct.pack("<I", 65000),
        "data_valid": vnet(2, 0, 0, 0, 0, 0),
    },
    # Operation sequences (see each target): transform, ESN, window, then
    # seal / deliver / change operations over testbed packets.
    "esp_open": {
        f"transform{t}": bytes([t, t & 1, 0, 64]) + b"".join(
            bytes([1, 0, len(p)]) + p + b"\x04" for p in (PING[:40], UDP_DNS[:40])
        ) + bytes([2, 0, 255, 2, 1, 255, 2, 0, 255, 3, 0, 5, 0, 7, 0, 0, 8]) + ESP[20:60]
        for t in range(5)
    },
    "esp_replay": {
        "in_order": bytes([0, 64]) + bytes([0, 1, 0, 1, 0, 0, 0, 0, 0]) * 8,
        "reordered": bytes([0x10, 0]) + bytes([0, 50, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 1, 0, 0, 0, 0]) * 6,
        "wrap": bytes([0, 64]) + bytes([4, 0, 0, 4, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0]) * 4,
    },
    "mobility_gateway": {
        "sequence": bytes([20, 1, 1]) + bytes([0, 1, 1, 2, 1, 0, 0, 1, 3, 1]) * 6 + bytes([2, 0, 1, 1, 0, 1, 1, 1, 1, 3, 1]) * 4,
    },
    "mobility_client": {
        "handover": bytes([2, 0, 200, 2, 0x0c, 0x80, 1, 2, 0, 0, 0]) + bytes([0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 3]) * 6,
    },
    "config_router": {"router_toml": read("config/router.toml"), "minimal_pnet": ROUTER_MIN},
    "config_endpoint": {
        name.replace(".toml", ""): read(rel)
        for name, rel in [
            ("responder.toml", "config/responder.toml"),
            ("client-h1.toml", "config/client-h1.toml"),
            ("mobile.toml", "config/mobile.toml"),
            ("manual-client-h1.toml", "tests/data/endpoint/manual-client-h1.toml"),
            ("manual-responder.toml", "tests/data/endpoint/manual-responder.toml"),
        ]
    },
    "config_ike": {
        "responder_h1": ike_doc("config/responder.toml", 0),
        "responder_m1": ike_doc("config/responder.toml", 2),
        "mobile": ike_doc("config/mobile.toml", 0),
    },
}


def main():
    for target, seeds in SEEDS_BY_TARGET.items():
        d = SEEDS / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (d / f"{name}.bin").write_bytes(data)
    print(f"wrote {sum(map(len, SEEDS_BY_TARGET.values()))} seeds for {len(SEEDS_BY_TARGET)} targets")


if __name__ == "__main__":
    main()
