#!/usr/bin/env bash
# 64-byte UDP forwarding rate: spimux vs Linux nft masquerade, same testbed,
# same generator (trafgen from h1, 64 flows), same counter (frames arriving
# at the WAN router's interface facing the NAT). Needs root.
#
# usage: bench/throughput.sh [SECONDS=5] [WORKERS=2] [BACKEND=afpacket] [TRAFGEN_CPUS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5} WORKERS=${2:-2} BACKEND=${3:-afpacket} TG_CPUS=${4:-1}
source bench/lib.sh
bench_init sb
cleanup() { stop_router; bash testbed/topology.sh down "$P"; rm -rf "$RUN"; }
trap cleanup EXIT INT TERM
bash testbed/topology.sh up "$P"
# The server side must not be the bottleneck: count at the WAN router's ingress.
COUNTER=/sys/class/net/${P}wr/statistics/rx_packets
rt_mac=$(ip netns exec "${P}rt" cat /sys/class/net/${P}ri/address)
h1_mac=$(ip netns exec "${P}h1" cat /sys/class/net/${P}a/address)
hex() { echo "$1" | sed 's/^/0x/; s/:/, 0x/g'; }
cat >"$RUN/udp64.cfg" <<CFG
{
  $(hex "$rt_mac"), $(hex "$h1_mac"), c16(0x0800),
  0x45, 0x00, c16(46), c16(0), c16(0x4000), 64, 17, csumip(14, 33),
  10, 6, 1, 2, 198, 51, 100, 69,
  0x40, dinc(0, 63), c16(9), c16(26), csumudp(14, 34),
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}
CFG
# Prime ARP on both sides so no frame waits for resolution.
warm() { ip netns exec "${P}h1" ping -c 2 -i 0.2 -W 1 198.51.100.69 >/dev/null; }
measure() {
  local before after
  before=$(ip netns exec "${P}wan" cat "$COUNTER")
  ip netns exec "${P}h1" timeout $((SECS + 5)) trafgen --dev "${P}a" --conf "$RUN/udp64.cfg" --cpus "$TG_CPUS" \
    --num $((SECS * 3000000)) --qdisc-path -q >/dev/null 2>&1 &
  local tg=$!
  sleep "$SECS"; kill -INT "$tg" 2>/dev/null || true; wait "$tg" 2>/dev/null || true
  sleep 0.3
  after=$(ip netns exec "${P}wan" cat "$COUNTER")
  echo $(((after - before) / SECS))
}

printf '[dataplane]\nworkers = %s\nbackend = "%s"\n' "$WORKERS" "$BACKEND" >"$RUN/extra.toml"
sed '/^\[dataplane\]/,/^\[arp\]/{/^\[arp\]/!d}' config/router.toml | cat - "$RUN/extra.toml" >"$RUN/router.toml"
start_router "$RUN/router.toml"
warm
spimux_pps=$(measure)
drops=$(ip netns exec "${P}rt" curl -sf http://127.0.0.1:9780/metrics | awk '/^spimux_drops_total/ && $NF != 0 {print}' | tr '\n' ' ')
stop_router

bash testbed/topology.sh kernel-nat "$P" on
warm
kernel_pps=$(measure)
bash testbed/topology.sh kernel-nat "$P" off

echo "64-byte UDP, ${SECS}s, trafgen cpus=$TG_CPUS, 64 flows, counted at the WAN router ingress"
echo "spimux ($BACKEND, $WORKERS workers): $spimux_pps pps   ${drops:+[drops: $drops]}"
echo "linux nft masquerade:            $kernel_pps pps"
awk -v a="$spimux_pps" -v b="$kernel_pps" 'BEGIN { if (b > 0) printf "ratio spimux/kernel: %.2f\n", a / b }'
