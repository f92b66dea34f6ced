#!/usr/bin/env python3
"""ESP interop and hostile-packet drivers for the testbed, built on scapy's
independent ESP implementation (SecurityAssociation).

gateway: plays the gateway for one spimux client keyed by hand (the legacy
         mode, so AES-CBC + HMAC-SHA-256-128, RFC 3602/4868: static keys are
         never AES-GCM). Waits for one ESP packet on
         --spi-in, decrypts it with scapy, checks the inner packet, and answers
         with a UDP datagram encrypted by scapy on --spi-out, which the spimux
         client must accept and deliver to its host.
attack:  next to a running spimux responder, takes one real ESP packet on
         --spi-in off the wire and re-sends it to the responder replayed,
         tampered (fresh sequence number, one ciphertext bit flipped),
         truncated, and with an unknown SPI.

Prints one JSON line. Every wait is bounded by --timeout.
"""
import argparse, json, select, socket, struct, sys, time

from scapy.all import IP, UDP, Raw, raw
from scapy.layers.ipsec import ESP, SecurityAssociation


def esp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def wait_esp(sock, spi, deadline, ready):
    """First IPv4+ESP datagram with `spi` (bytes), or None at the deadline."""
    if ready:
        open(ready, "w").close()
    while time.time() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        pkt = sock.recv(65535)
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) >= ihl + 8 and struct.unpack("!I", pkt[ihl:ihl + 4])[0] == spi:
            return pkt
    return None


def sa(spi, key, src, dst):
    """AES-CBC + HMAC-SHA-256-128 SA from spimux's key form: the AES key
    (16 or 32 bytes) followed by the 32-byte HMAC key."""
    k = bytes.fromhex(key.removeprefix("0x"))
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-CBC", crypt_key=k[:-32],
                               auth_algo="SHA2-256-128", auth_key=k[-32:],
                               tunnel_header=IP(src=src, dst=dst))


def send_ip(datagram):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    dst = socket.inet_ntoa(datagram[16:20])
    s.sendto(datagram, (dst, 0))
    s.close()


def gateway(a):
    sock = esp_socket()
    pkt = wait_esp(sock, a.spi_in, time.time() + a.timeout, a.ready)
    if pkt is None:
        print(json.dumps({"received": False}))
        return 1
    outer = IP(pkt)
    ihl = (pkt[0] & 0x0F) * 4
    seq = struct.unpack("!I", pkt[ihl + 4:ihl + 8])[0]
    inner = sa(a.spi_in, a.key_in, outer.src, outer.dst).decrypt(outer)
    ok = inner.src == a.peer_inner and inner.dst == a.gw_inner and UDP in inner
    payload = bytes(inner[UDP].payload) if UDP in inner else b""
    # Answer from scapy: inner UDP back to the sender's port, sealed by scapy.
    reply_inner = IP(src=a.gw_inner, dst=a.peer_inner) / UDP(sport=inner[UDP].dport, dport=inner[UDP].sport) / Raw(a.reply.encode())
    reply = sa(a.spi_out, a.key_out, outer.dst, outer.src).encrypt(IP(raw(reply_inner)), seq_num=1)
    send_ip(raw(reply))
    print(json.dumps({"received": True, "decrypted": ok, "inner_src": inner.src, "payload": payload.decode(errors="replace"),
                      "seq": seq, "replied_spi": hex(a.spi_out)}))
    return 0 if ok else 1


def attack(a):
    sock = esp_socket()
    pkt = wait_esp(sock, a.spi_in, time.time() + a.timeout, a.ready)
    if pkt is None:
        print(json.dumps({"captured": False}))
        return 1
    ihl = (pkt[0] & 0x0F) * 4
    hdr, esp = bytearray(pkt[:ihl]), bytes(pkt[ihl:])
    seq = struct.unpack("!I", esp[4:8])[0]

    def ip(body):
        return bytes(IP(src=socket.inet_ntoa(bytes(hdr[12:16])), dst=a.dst, proto=50) / Raw(body))

    tampered = bytearray(esp)
    tampered[4:8] = struct.pack("!I", seq + 1000)  # ahead of the window, so the ICV is what fails
    tampered[20] ^= 0x01
    unknown = struct.pack("!I", 0x0BADF00D) + esp[4:]
    sent = {"replayed": esp, "tampered": bytes(tampered), "truncated": esp[:12], "unknown_spi": unknown}
    for body in sent.values():
        send_ip(ip(body))
    print(json.dumps({"captured": True, "seq": seq, "sent": list(sent)}))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["gateway", "attack"])
    p.add_argument("--spi-in", type=lambda s: int(s, 0), required=True)
    p.add_argument("--key-in", help="AES key + HMAC-SHA-256 key, hex, of --spi-in (gateway)")
    p.add_argument("--spi-out", type=lambda s: int(s, 0))
    p.add_argument("--key-out")
    p.add_argument("--peer-inner")
    p.add_argument("--gw-inner")
    p.add_argument("--reply", default="scapy-says-hi")
    p.add_argument("--dst", help="responder address (attack)")
    p.add_argument("--ready", help="file created once listening")
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args()
    return gateway(a) if a.mode == "gateway" else attack(a)


if __name__ == "__main__":
    sys.exit(main())
