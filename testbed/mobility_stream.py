#!/usr/bin/env python3
"""Bounded, numbered UDP stream in one direction plus a receiver for the
other, for measuring handovers. Every packet carries its sequence number and
send time (CLOCK_REALTIME, shared by all namespaces of one machine).

    mobility_stream.py --bind ADDR:PORT --peer ADDR:PORT --interval-ms 2
                       --duration S --sent FILE --received FILE

Writes "seq send_time" lines for every packet sent and "seq send_time
recv_time" lines for every packet received. Stops after --duration seconds.
"""
import argparse
import socket
import struct
import threading
import time

FMT = "!Id"  # sequence number, send time: 12 bytes


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", type=addr, required=True)
    ap.add_argument("--peer", type=addr, required=True)
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--sent", required=True)
    ap.add_argument("--received", required=True)
    a = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(a.bind)
    sock.settimeout(0.1)
    end = time.time() + a.duration
    received = []

    def receive():
        while time.time() < end + 0.5:
            try:
                data = sock.recv(64)
            except socket.timeout:
                continue
            except OSError:
                continue
            if len(data) == struct.calcsize(FMT):
                seq, sent = struct.unpack(FMT, data)
                received.append((seq, sent, time.time()))

    rx = threading.Thread(target=receive)
    rx.start()
    sent = []
    seq = 0
    interval = a.interval_ms / 1000.0
    nxt = time.time()
    while True:
        now = time.time()
        if now >= end:
            break
        try:
            sock.sendto(struct.pack(FMT, seq, now), a.peer)
            sent.append((seq, now))
        except OSError:
            sent.append((seq, now))  # no route at this instant: counts as lost
        seq += 1
        nxt += interval
        delay = nxt - time.time()
        if delay > 0:
            time.sleep(delay)
    rx.join()
    with open(a.sent, "w") as f:
        f.writelines(f"{s} {t:.6f}\n" for s, t in sent)
    with open(a.received, "w") as f:
        f.writelines(f"{s} {t:.6f} {r:.6f}\n" for s, t, r in received)


if __name__ == "__main__":
    main()
