#!/usr/bin/env python3
"""Sends a fixed set of malformed and unusual frames to the router's MAC.

usage: malformed.py IFACE ROUTER_MAC SRC_IP DST_IP
Each case is sent REPEAT times; the list is printed as JSON (case -> expected drop reason).
"""
import json, struct, sys
from scapy.all import ARP, Ether, ICMP, IP, TCP, UDP, Dot1Q, IPv6, Raw, conf, sendp, raw

conf.verb = 0
iface, mac, src, dst = sys.argv[1:5]
REPEAT = 3


def ip_bytes(pkt):
    return raw(pkt)


eth = Ether(dst=mac, type=0x0800)
good_udp = IP(src=src, dst=dst, ttl=64) / UDP(sport=40000, dport=9) / Raw(b"x" * 16)
b = bytearray(ip_bytes(good_udp))

cases = {}


def case(name, reason, frame):
    cases[name] = (reason, bytes(frame))


# A frame shorter than the Ethernet header cannot be tested here: the kernel
# zero-pads AF_PACKET sends to the link header length, so it arrives as
# ethertype 0 (counted as non_ipv4). wire::ethernet unit tests cover it.
case("ethertype_zero", "non_ipv4", bytes(Ether(dst=mac, type=0))[:12])
bad_ihl = bytearray(b); bad_ihl[0] = 0x43
case("bad_ihl", "ip_malformed", raw(eth) + bytes(bad_ihl))
long_ihl = bytearray(b[:24]); long_ihl[0] = 0x4F
case("ihl_beyond_frame", "ip_truncated", raw(eth)[:14] + bytes(long_ihl))
long_total = bytearray(b); long_total[2:4] = struct.pack("!H", 1400)
case("total_length_beyond_frame", "ip_truncated", raw(eth)[:14] + bytes(long_total))
bad_sum = bytearray(b); bad_sum[10] ^= 0xFF
case("bad_header_checksum", "ip_bad_checksum", raw(eth)[:14] + bytes(bad_sum))
case("fragment", "fragment", raw(eth / IP(src=src, dst=dst, flags="MF") / UDP(sport=1, dport=2) / Raw(b"y" * 16)))
case("ttl_1", "ttl_exceeded", raw(eth / IP(src=src, dst=dst, ttl=1) / UDP(sport=40001, dport=9) / Raw(b"z")))
case("unknown_protocol", "unsupported_protocol", raw(eth / IP(src=src, dst=dst, proto=47) / Raw(b"\x00" * 8)))
tcp = raw(IP(src=src, dst=dst) / TCP(sport=40002, dport=80))
short_tcp = bytearray(tcp[:30]); short_tcp[2:4] = struct.pack("!H", 30); short_tcp[10:12] = b"\x00\x00"
short_tcp = raw(IP(short_tcp))  # scapy recomputes the header checksum only
case("truncated_tcp", "malformed_l4", raw(eth)[:14] + short_tcp)
udp_hdr = raw(IP(src=src, dst=dst, proto=17) / Raw(b"\x9c\x40\x00\x09"))
case("truncated_udp", "malformed_l4", raw(eth)[:14] + udp_hdr)
esp = raw(IP(src=src, dst=dst, proto=50) / Raw(b"\x00\x00\x12\x34"))
case("truncated_esp", "malformed_l4", raw(eth)[:14] + esp)
case("arp_garbage", "arp_malformed", raw(eth / ARP(hwtype=6, plen=16)))
case("arp_short", "arp_malformed", raw(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806)) + b"\x00\x01\x08\x00")
case("ipv6", "non_ipv4", raw(Ether(dst=mac) / IPv6(dst="2001:db8::1") / UDP()))
case("vlan", "vlan", raw(Ether(dst=mac) / Dot1Q(vlan=5) / IP(src=src, dst=dst) / UDP()))
case("other_mac", "not_for_us", raw(Ether(dst="02:12:34:56:78:9a") / good_udp))

for _ in range(REPEAT):
    for _, (reason, frame) in cases.items():
        sendp(frame, iface=iface)
print(json.dumps({k: v[0] for k, v in cases.items()}))
