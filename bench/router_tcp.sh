#!/usr/bin/env bash
# TCP through the router: one iperf3 stream h1 → server (upload) and server → h1
# (download), spimux vs Linux nft masquerade in the same namespace, on the
# default testbed (OFFLOADS=on: TSO/GSO super-frames and partial checksums reach
# the router). Prints Mbit/s (iperf3 receiver) and the server's TCP checksum
# errors. Needs root.
#
# usage: bench/router_tcp.sh [SECONDS=5]
# VERIFY_CSUM=1 makes the WAN router finish checksums in software (tx off on
# its link to the server), so the server verifies every translated checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
source bench/lib.sh
bench_init rc
testbed_up
[ -n "${VERIFY_CSUM:-}" ] && x "${P}wan" ethtool -K "${P}ws" tx off >/dev/null

iperf() {  # $1 = "" (upload) | -R (download); prints "Mbit/s csum-errors"
  ip netns exec "${P}srv" timeout $((SECS + 20)) iperf3 -s -1 >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 100); do x "${P}srv" ss -Hlnt 'sport = :5201' | grep -q . && break; sleep 0.05; done
  x "${P}srv" nstat -n
  x "${P}h1" timeout $((SECS + 15)) iperf3 -c 198.51.100.69 -t "$SECS" $1 -J >"$RUN/iperf.json"
  wait "$srv" 2>/dev/null || true
  local errs
  errs=$(x "${P}srv" nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ {print $2}')
  echo "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$RUN/iperf.json") ${errs:-0}"
}

start_router config/router.toml
read -r su sue < <(iperf "")
read -r sd sde < <(iperf -R)
offl=$(x "${P}rt" curl -sf http://127.0.0.1:9780/metrics | awk '/^spimux_offload_frames_total|^spimux_gso_segments_total/ {printf "%s=%s ", $1, $2}')
stop_router
bash testbed/topology.sh kernel-nat "$P" on
read -r ku kue < <(iperf "")
read -r kd kde < <(iperf -R)
echo "TCP through the router, ${SECS} s, one stream, iperf3 receiver Mbit/s (server TcpInCsumErrors):"
printf '  %-28s upload %6s (%s)  download %6s (%s)\n' "spimux (afpacket)" "$su" "$sue" "$sd" "$sde"
printf '  %-28s upload %6s (%s)  download %6s (%s)\n' "linux nft masquerade" "$ku" "$kue" "$kd" "$kde"
echo "  ratio upload $(python3 -c "print(round($su/$ku,2))"), download $(python3 -c "print(round($sd/$kd,2))")"
echo "  spimux offload counters: $offl"
