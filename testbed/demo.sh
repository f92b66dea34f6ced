#!/usr/bin/env bash
# The main job: spimux routing the default testbed topology with the default
# config, real traffic from both inside hosts (ping, HTTP, iperf3, traceroute,
# plain ESP to one responder, real ESP tunnels with the spimux client and
# responder), then a metrics summary. Needs root.
# Everything it creates carries one per-run prefix and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces, raw sockets)" >&2; exit 1; }
bash testbed/install-deps.sh
cargo build --release --locked --quiet
BIN=$PWD/target/release/spimux
PY=/usr/bin/python3
P=sd$(printf '%04x' $((RANDOM % 65536)))
RUN=$(mktemp -d /tmp/spimux-demo-XXXX)
ROUTER_PID=
ENDPOINTS=()
cleanup() {
  for p in "${ENDPOINTS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$ROUTER_PID" ] && kill "$ROUTER_PID" 2>/dev/null && wait "$ROUTER_PID" 2>/dev/null || true
  bash testbed/topology.sh down "$P"
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM
x() { ip netns exec "$P$1" "${@:2}"; }
step() { printf '\n== %s\n' "$*"; }

step "testbed $P up"
bash testbed/topology.sh up "$P"
ip netns exec "${P}rt" "$BIN" router --config config/router.toml --inside-interface "${P}ri" --outside-interface "${P}ro" \
  --control-socket "$RUN/router.sock" \
  >"$RUN/router.log" 2>&1 &
ROUTER_PID=$!
for _ in $(seq 50); do x rt curl -sf -o /dev/null http://127.0.0.1:9780/metrics && break; sleep 0.1; done

step "ping from both inside hosts to 198.51.100.69"
for h in h1 h2; do x $h ping -c 3 -i 0.2 -W 2 198.51.100.69 | tail -1; done

step "HTTP: 5 MB from the server to h1, checksum compared"
head -c 5000000 /dev/urandom >"$RUN/blob"
x srv timeout 30 $PY -m http.server 8080 --bind 198.51.100.69 --directory "$RUN" >/dev/null 2>&1 &
sleep 0.7
want=$(sha256sum <"$RUN/blob" | cut -c1-16); got=$(x h1 timeout 20 curl -sf http://198.51.100.69:8080/blob | sha256sum | cut -c1-16)
echo "server $want  h1 $got  $([ "$want" = "$got" ] && echo OK || echo MISMATCH)"

step "traceroute from h2 (hop 1 is spimux, hop 2 is translated back through the NAT)"
x h2 traceroute -n -q 1 -w 2 -m 3 198.51.100.69

step "iperf3 TCP from h2, 3 s"
x srv timeout 20 iperf3 -s -1 -B 198.51.100.69 >/dev/null 2>&1 &
sleep 0.5
x h2 timeout 20 iperf3 -c 198.51.100.69 -t 3 | grep -E 'sender|receiver'

step "plain ESP from both hosts to one responder (seed scenario, default SPI layout)"
SO1=0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' '); SO2=0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
SR1=$("$BIN" spi derive "$SO1"); SR2=$("$BIN" spi derive "$SO2")
echo "h1: inbound SPI $SO1 -> responder SPI $SR1;  h2: $SO2 -> $SR2"
x srv timeout 20 $PY testbed/esp_peer.py responder --bind 198.51.100.69 --pairs "$SR1:$SO1,$SR2:$SO2" --seconds 6 &
sleep 0.5
x h1 timeout 20 $PY testbed/esp_peer.py host --dst 198.51.100.69 --spi-out "$SR1" --spi-in "$SO1" --count 20 --tag h1 &
x h2 timeout 20 $PY testbed/esp_peer.py host --dst 198.51.100.69 --spi-out "$SR2" --spi-in "$SO2" --count 20 --tag h2
wait %?h1 2>/dev/null || true
sleep 0.3

source testbed/endpoint.sh

step "ESP tunnels keyed by IKEv2: spimux client on h1 and h2, spimux responder on the server (config/*.toml), plain ESP"
ip netns exec "${P}srv" "$BIN" responder --config config/responder.toml --control-socket "$RUN/responder.sock" >"$RUN/responder.log" 2>&1 &
ENDPOINTS+=($!)
for h in h1 h2; do
  ip netns exec "$P$h" "$BIN" client --config "config/client-$h.toml" --control-socket "$RUN/client-$h.sock" >"$RUN/client-$h.log" 2>&1 &
  ENDPOINTS+=($!)
done
for ns in srv:9781 h1:9782 h2:9782; do
  for _ in $(seq 50); do x "${ns%:*}" curl -sf -o /dev/null "http://127.0.0.1:${ns#*:}/metrics" && break; sleep 0.1; done
done
for h in h1 h2; do wait_child_sa "$P$h" 9782; done
x srv curl -sf http://127.0.0.1:9781/metrics | grep -E '^spimux_ike_(sas|child_sas|spis_total)' | awk '$NF != 0'
for h in h1 h2; do printf '%s -> 10.99.0.1 (gateway inner): ' $h; x $h ping -c 3 -i 0.2 -W 2 10.99.0.1 | tail -1; done
x srv timeout 20 iperf3 -s -1 -B 10.99.0.1 >/dev/null 2>&1 &
sleep 0.5
echo "iperf3 TCP from h1 through its tunnel, 3 s:"
x h1 timeout 20 iperf3 -c 10.99.0.1 -t 3 | grep -E 'receiver'
echo "responder metrics (non-zero):"
x srv curl -sf http://127.0.0.1:9781/metrics | grep -v '^#' | awk '$NF != 0' | grep -E 'tunnel_(rx|tx)_packets|sa_info|tunnel_drops'
echo "responder state through its control socket: spimux responder show tunnels / child"
"$BIN" responder show tunnels --socket "$RUN/responder.sock"
"$BIN" responder show child --socket "$RUN/responder.sock"
for p in "${ENDPOINTS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
ENDPOINTS=()

step "the same tunnel from h1 over UDP encapsulation (UDP GSO trains, GSO super-frames through spimux)"
# The responder now answers NAT detection: IKE sees the router's NAT and floats to UDP 4500.
sed 's/^nat_detection = "off"/nat_detection = "auto"/' config/responder.toml >"$RUN/responder-udp.toml"
ip netns exec "${P}srv" "$BIN" responder --config "$RUN/responder-udp.toml" --control-socket "$RUN/responder-udp.sock" >"$RUN/responder-udp.log" 2>&1 &
ENDPOINTS+=($!)
ip netns exec "${P}h1" "$BIN" client --config config/client-h1.toml --control-socket "$RUN/client-h1-udp.sock" >"$RUN/client-h1-udp.log" 2>&1 &
ENDPOINTS+=($!)
for ns in srv:9781 h1:9782; do
  for _ in $(seq 50); do x "${ns%:*}" curl -sf -o /dev/null "http://127.0.0.1:${ns#*:}/metrics" && break; sleep 0.1; done
done
wait_child_sa "${P}h1" 9782
x h1 ping -c 2 -i 0.2 -W 2 10.99.0.1 | tail -1
x srv timeout 20 iperf3 -s -1 -B 10.99.0.1 >/dev/null 2>&1 &
sleep 0.5
echo "iperf3 TCP from h1 through its UDP-encapsulated tunnel, 3 s:"
x h1 timeout 20 iperf3 -c 10.99.0.1 -t 3 | grep -E 'receiver'
sleep 0.3
printf 'client h1: '; x h1 curl -sf http://127.0.0.1:9782/metrics | grep '^spimux_udp_trains_total{direction="tx"}'
printf 'responder: '; x srv curl -sf http://127.0.0.1:9781/metrics | grep '^spimux_udp_trains_total{direction="rx"}'
for p in "${ENDPOINTS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
ENDPOINTS=()

step "router state through its control socket: spimux router show esp / limits"
"$BIN" router show esp --socket "$RUN/router.sock"
"$BIN" router show limits --socket "$RUN/router.sock" | sed -n '1,9p'

step "metrics summary (non-zero samples)"
x rt curl -sf http://127.0.0.1:9780/metrics | grep -v '^#' | awk '$NF != 0' | grep -E \
  'rx_packets|tx_packets|drops_total|sessions_created|nat_sessions |nat_mappings|esp_|icmp_errors|arp_cache|offload_frames|gso_segments'
kill -TERM "$ROUTER_PID"; wait "$ROUTER_PID" || true; ROUTER_PID=
tail -1 "$RUN/router.log"
