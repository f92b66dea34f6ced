#!/usr/bin/env python3
"""Produces the ESP test vector in src/esp/tests.rs with an independent implementation (scapy)."""
from scapy.all import IP, UDP, Raw, raw
from scapy.layers.ipsec import SecurityAssociation, ESP
key = bytes(range(16)); salt = bytes([0xca, 0xfe, 0xba, 0xbe])
sa = SecurityAssociation(ESP, spi=0x1234abcd, crypt_algo='AES-GCM', crypt_key=key + salt,
                         tunnel_header=IP(src='203.0.113.10', dst='198.51.100.69'))
inner = IP(src='10.6.1.2', dst='10.9.0.1', id=1, ttl=64) / UDP(sport=1000, dport=2000) / Raw(b'spimux vector')
inner = IP(raw(inner))
p = sa.encrypt(inner, seq_num=7, iv=(7).to_bytes(8, 'big'))
b = raw(p)
print("inner", raw(inner).hex())
print("esp", b[20:].hex())
