#!/usr/bin/env python3
"""slow_upload.py FILE HOST PORT BIND SECONDS: sends FILE over TCP to HOST:PORT
from source address BIND, spread evenly over SECONDS (so rekeys happen during
the transfer). Bounded: gives up after SECONDS + 30 s."""
import socket
import sys
import time

path, host, port, bind, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
data = open(path, "rb").read()
chunk = 32 * 1024
chunks = max(1, (len(data) + chunk - 1) // chunk)
pause = secs / chunks
deadline = time.monotonic() + secs + 30
s = socket.create_connection((host, port), timeout=10, source_address=(bind, 0))
for i in range(chunks):
    if time.monotonic() > deadline:
        sys.exit("slow_upload: deadline passed")
    s.sendall(data[i * chunk:(i + 1) * chunk])
    time.sleep(pause)
s.shutdown(socket.SHUT_WR)
s.settimeout(30)
s.recv(1)  # wait for the receiver to close
s.close()
