#!/usr/bin/env python3
"""Produces the ESP test vectors in src/esp/tests.rs with an independent implementation (scapy 2.5),
and decrypts packets sealed by spimux with it.

  esp_vector.py                      print every vector (inner packet, ESP from the SPI on)
  esp_vector.py decrypt NAME HEX...  open spimux's ESP packets (hex, from the SPI on) with
                                     scapy under vector NAME's SA; prints the inner packets
  esp_vector.py check                read "NAME HEX" lines (spimux's packets, sealed with
                                     random IVs) from stdin, open each with scapy and compare
                                     with the inner packet; exit status 1 on any mismatch
                                     (the test esp::tests::scapy_opens_what_spimux_seals_with_cbc
                                     runs it)

Needs scapy 2.5 with python3-cryptography (Debian: apt-get install python3-scapy; run it with
/usr/bin/python3 if another python3 comes first in PATH).
"""
import hmac
import hashlib
import struct
import sys

from scapy.all import IP, UDP, Raw, raw
from scapy.layers.ipsec import SecurityAssociation, ESP

SPI = 0x1234abcd
OUTER = IP(src='203.0.113.10', dst='198.51.100.69')
KEY16 = bytes(range(16))
KEY32 = bytes(range(32))
SALT = bytes([0xca, 0xfe, 0xba, 0xbe])
# HMAC keys: the hash length (RFC 4868 §2.1.1).
AUTH = {'SHA2-256-128': bytes(range(0x20, 0x40)),
        'SHA2-384-192': bytes(range(0x40, 0x70)),
        'SHA2-512-256': bytes(range(0x80, 0xc0))}
HASH = {'SHA2-256-128': (hashlib.sha256, 16), 'SHA2-384-192': (hashlib.sha384, 24),
        'SHA2-512-256': (hashlib.sha512, 32)}


def sa_gcm():
    return SecurityAssociation(ESP, spi=SPI, crypt_algo='AES-GCM', crypt_key=KEY16 + SALT,
                               tunnel_header=OUTER)


def sa_cbc(key, auth, auth_algo=None):
    return SecurityAssociation(ESP, spi=SPI, crypt_algo='AES-CBC', crypt_key=key,
                               auth_algo=auth_algo or auth, auth_key=AUTH[auth],
                               tunnel_header=OUTER)


# name: (SA, seq, IV, ESN high bits or None)
VECTORS = {
    'gcm': (sa_gcm, 7, (7).to_bytes(8, 'big'), None),
    'cbc128_sha256': (lambda: sa_cbc(KEY16, 'SHA2-256-128'), 7, bytes(range(0xa0, 0xb0)), None),
    'cbc256_sha384': (lambda: sa_cbc(KEY32, 'SHA2-384-192'), 8, bytes(range(0xb0, 0xc0)), None),
    'cbc256_sha512': (lambda: sa_cbc(KEY32, 'SHA2-512-256'), 9, bytes(range(0xc0, 0xd0)), None),
    # ESN: sequence number 2^32 + 5. scapy 2.5 does not authenticate ESP's high bits, so it
    # encrypts without integrity and the ICV is HMAC(ESP ‖ high 32 bits) truncated (RFC 4303
    # §2.2.1, Appendix B), computed here with hashlib/hmac.
    'cbc128_sha256_esn': (lambda: sa_cbc(KEY16, 'SHA2-256-128', 'NULL'), 5,
                          bytes(range(0xd0, 0xe0)), 1),
}


def inner_packet():
    """Inner IPv4/UDP packet 10.6.1.2:1000 -> 10.9.0.1:2000, "spimux vector"."""
    p = IP(src='10.6.1.2', dst='10.9.0.1', id=1, ttl=64) / UDP(sport=1000, dport=2000) / Raw(b'spimux vector')
    return IP(raw(p))


def esp_bytes(name):
    make, seq, iv, high = VECTORS[name]
    b = raw(make().encrypt(inner_packet(), seq_num=seq, iv=iv))[20:]
    if high is not None:
        h, n = HASH['SHA2-256-128']
        b += hmac.new(AUTH['SHA2-256-128'], b + struct.pack('!L', high), h).digest()[:n]
    return b


def open_inner(name, hexes):
    """Yields the inner packet of each ESP packet, opened with scapy."""
    make, _, _, high = VECTORS[name]
    sa = make()
    for hx in hexes:
        b = bytes.fromhex(hx)
        if high is not None:
            h, n = HASH['SHA2-256-128']
            body, icv = b[:-n], b[-n:]
            want = hmac.new(AUTH['SHA2-256-128'], body + struct.pack('!L', high), h).digest()[:n]
            if not hmac.compare_digest(icv, want):
                raise SystemExit('ICV mismatch (ESN)')
            b = body
        pkt = IP(raw(OUTER.copy() / ESP(b)))
        # Tunnel mode: scapy returns the inner packet (ICV checked, padding removed).
        yield raw(sa.decrypt(pkt))


def check(lines):
    want = raw(inner_packet())
    bad = 0
    for line in lines:
        if not line.strip() or ' ' not in line.strip():
            continue
        name, hx = line.split()[:2]
        if name not in VECTORS:
            continue
        try:
            got = next(open_inner(name, [hx]))
        except Exception as e:  # scapy raises on a bad ICV or padding
            got = ('refused: %s' % e).encode()
        ok = got == want
        bad += not ok
        print(name, 'ok' if ok else 'MISMATCH ' + got.hex())
    return 1 if bad else 0


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == 'decrypt':
        for inner in open_inner(sys.argv[2], sys.argv[3:]):
            print('inner', inner.hex())
    elif len(sys.argv) > 1 and sys.argv[1] == 'check':
        sys.exit(check(sys.stdin))
    else:
        print('inner', raw(inner_packet()).hex())
        for name in VECTORS:
            print(name, esp_bytes(name).hex())
