#!/usr/bin/env python3
"""Plain-ESP traffic peers for the testbed (no keys: the router never decrypts).

responder: answers each ESP packet whose SPI is a known responder SPI S_R with
           an ESP packet on the paired inside-host SPI S_O, echoing the body.
host:      sends COUNT packets on S_R and reports which replies came back.
send:      sends COUNT packets with one SPI (crafted collisions, unmatched SPIs).

Every loop is bounded by a packet count and a deadline.
"""
import argparse, json, select, socket, struct, sys, time

ESP = 50


def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, ESP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def parse(pkt):
    """(src, spi, seq, body) of an IPv4+ESP datagram, or None."""
    if len(pkt) < 20:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 8:
        return None
    spi, seq = struct.unpack("!II", pkt[ihl:ihl + 8])
    return socket.inet_ntoa(pkt[12:16]), spi, seq, pkt[ihl + 8:]


def spi(s):
    return int(s, 0)


def responder(a):
    pairs = {}
    for p in a.pairs.split(","):
        if p:
            r, o = p.split(":")
            pairs[spi(r)] = spi(o)
    s = raw()
    s.bind((a.bind, 0))
    if a.ready:
        open(a.ready, "w").close()
    deadline = time.time() + a.seconds
    seen = {}
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], 0.1)
        if not r:
            continue
        pkt = s.recv(65535)
        p = parse(pkt)
        if not p:
            continue
        src, in_spi, seq, body = p
        seen.setdefault(f"{in_spi:#010x}", []).append(src)
        if in_spi in pairs:
            s.sendto(struct.pack("!II", pairs[in_spi], seq) + body, (src, 0))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({k: len(v) for k, v in seen.items()}, f)


def host(a):
    s = raw()
    out_spi, in_spi = spi(a.spi_out), spi(a.spi_in)
    got_own = got_foreign = 0
    tag = a.tag.encode()
    deadline = time.time() + a.timeout
    sent = 0
    next_send = time.time()
    while time.time() < deadline and (sent < a.count or got_own + got_foreign < sent):
        if sent < a.count and time.time() >= next_send:
            body = tag + b":" + str(sent).encode() + b":" + b"\x00" * 32
            s.sendto(struct.pack("!II", out_spi, sent + 1) + body, (a.dst, 0))
            sent += 1
            next_send = time.time() + a.interval
        r, _, _ = select.select([s], [], [], 0.02)
        if not r:
            continue
        p = parse(s.recv(65535))
        if not p or p[0] != a.dst:
            continue
        _, rspi, _, body = p
        if rspi == in_spi and body.startswith(tag + b":"):
            got_own += 1
        else:
            got_foreign += 1
    print(json.dumps({"tag": a.tag, "sent": sent, "own": got_own, "foreign": got_foreign}))


def send(a):
    s = raw()
    for i in range(a.count):
        s.sendto(struct.pack("!II", spi(a.spi), i + 1) + b"crafted" + b"\x00" * 24, (a.dst, 0))
        time.sleep(a.interval)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("responder")
    r.add_argument("--bind", required=True)
    r.add_argument("--pairs", required=True, help="S_R:S_O,...")
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--out")
    r.add_argument("--ready", help="file to create once the socket is bound")
    h = sub.add_parser("host")
    h.add_argument("--dst", required=True)
    h.add_argument("--spi-out", required=True)
    h.add_argument("--spi-in", required=True)
    h.add_argument("--count", type=int, default=10)
    h.add_argument("--interval", type=float, default=0.05)
    h.add_argument("--timeout", type=float, default=5)
    h.add_argument("--tag", required=True)
    x = sub.add_parser("send")
    x.add_argument("--dst", required=True)
    x.add_argument("--spi", required=True)
    x.add_argument("--count", type=int, default=3)
    x.add_argument("--interval", type=float, default=0.02)
    a = ap.parse_args()
    {"responder": responder, "host": host, "send": send}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
