#!/usr/bin/env python3
"""pcap_replay.py PCAP FRAME...: sends the IPv4 datagrams of the given frames
(1-based numbers, as tshark's frame.number) of PCAP again, byte for byte,
through a raw socket (the kernel routes them by their destination). Bounded:
one send per frame given. Prints how many were sent."""
import socket
import sys

from scapy.all import IP, raw, rdpcap

path, frames = sys.argv[1], {int(f) for f in sys.argv[2:]}
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = 0
for n, p in enumerate(rdpcap(path), start=1):
    if n in frames and IP in p:
        ip = p[IP]
        # Exactly the captured datagram (no Ethernet padding).
        s.sendto(raw(ip)[: ip.len], (ip.dst, 0))
        sent += 1
print(sent)
