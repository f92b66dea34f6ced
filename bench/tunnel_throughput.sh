#!/usr/bin/env bash
# TCP throughput through one ESP tunnel, h1 → protected network (10.99.0.1),
# through the spimux router, measured with iperf3 the same way for:
#   strongswan  charon + kernel-libipsec (userspace ESP on a TUN; UDP-encapsulated
#               only, which the NAT forces anyway), AES-128-GCM-16, PSK
#   spimux-udp  spimux client → spimux responder, ESP in UDP/4500
#   spimux-esp  spimux client → spimux responder, plain ESP (protocol 50)
# Prints Mbit/s (iperf3 receiver) per stack and the ratio to strongSwan. Needs root.
#
# usage: bench/tunnel_throughput.sh [SECONDS=10] [STREAMS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10} STREAMS=${2:-1}
source bench/lib.sh
bench_init st
ensure_strongswan
SW=$PWD/bench/strongswan
testbed_up config/router.toml

iperf() {  # prints receiver Mbit/s
  ip netns exec "${P}srv" timeout $((SECS + 20)) iperf3 -s -1 -B 10.99.0.1 >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 100); do x "${P}srv" ss -Hlnt 'sport = :5201' | grep -q . && break; sleep 0.05; done
  x "${P}h1" timeout $((SECS + 15)) iperf3 -c 10.99.0.1 -B 10.98.0.2 -t "$SECS" -P "$STREAMS" -J >"$RUN/iperf.json"
  wait "$srv" 2>/dev/null || true
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$RUN/iperf.json"
}

# strongSwan: inner addresses on lo, charon per namespace with a private /run.
x "${P}h1" ip addr add 10.98.0.2/32 dev lo
x "${P}srv" ip addr add 10.99.0.1/24 dev lo
start_charon "${P}srv" responder "$SW/responder.conf" "$RUN"
start_charon "${P}h1" initiator "$SW/initiator.conf" "$RUN"
x "${P}h1" ping -c 2 -i 0.2 -W 2 -I 10.98.0.2 10.99.0.1 >/dev/null
sw=$(iperf)
stop_all
x "${P}h1" ip addr del 10.98.0.2/32 dev lo
x "${P}srv" ip addr del 10.99.0.1/24 dev lo

spimux() {  # $1 = none | udp
  # Keys from IKE. Plain ESP: the responder answers no NAT detection (the
  # shipped config); UDP: it detects the router's NAT and floats to 4500.
  if [ "$1" = udp ]; then nat=auto; else nat=off; fi
  sed "s/^nat_detection = \"off\"/nat_detection = \"$nat\"/" config/responder.toml >"$RUN/responder.toml"
  ip netns exec "${P}srv" "$BIN" responder --config "$RUN/responder.toml" --control-socket "$RUN/responder-$1.sock" >"$RUN/responder-$1.log" 2>&1 &
  PIDS+=($!)
  wait_metrics "${P}srv" 9781
  ip netns exec "${P}h1" "$BIN" client --config config/client-h1.toml --control-socket "$RUN/client-$1.sock" >"$RUN/client-$1.log" 2>&1 &
  PIDS+=($!)
  wait_child_sa "${P}h1" 9782
  x "${P}h1" ping -c 2 -i 0.2 -W 2 10.99.0.1 >/dev/null
  iperf
  x "${P}srv" curl -sf http://127.0.0.1:9781/metrics | awk '/^spimux_tunnel_drops_total/ && $NF != 0' >"$RUN/drops-$1"
  stop_all
}
su=$(spimux udp)
se=$(spimux none)
echo "TCP through one tunnel, ${SECS} s, ${STREAMS} stream(s), iperf3 receiver Mbit/s (same testbed, spimux router in the path):"
printf '  %-34s %6s Mbit/s\n' "strongSwan 5.9 kernel-libipsec (UDP)" "$sw"
printf '  %-34s %6s Mbit/s  ratio %s\n' "spimux ESP in UDP/4500" "$su" "$(python3 -c "print(round($su/$sw,2))")"
printf '  %-34s %6s Mbit/s  ratio %s\n' "spimux plain ESP" "$se" "$(python3 -c "print(round($se/$sw,2))")"
for f in "$RUN"/drops-*; do [ -s "$f" ] && { echo "  responder drops (${f##*-}):"; sed 's/^/    /' "$f"; }; done
true
