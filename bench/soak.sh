#!/usr/bin/env bash
# Soak: MINUTES of churn through spimux's router — new UDP flows and short TCP
# connections from both inside hosts, IKE-keyed ESP tunnels (spimux client on
# h1 and h2, spimux responder on the server) rekeying every REKEY seconds,
# and h2 moving between two inside addresses every MOVE seconds — sampling
# the router's RSS and table sizes each minute. Then the churn stops and the
# tables must drain to zero once their timeouts pass. Needs root.
#
# usage: bench/soak.sh [MINUTES=60] [REKEY=60] [MOVE=120]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-60} REKEY=${2:-60} MOVE=${3:-120}
source bench/lib.sh
bench_init sk
# The shortest timeouts the RFC floors allow, so draining is observable.
cp config/router.toml "$RUN/router.toml"
python3 - "$RUN/router.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
for key, val in [("cache_timeout", "60"), ("udp", "120"), ("tcp_transitory", "240"), ("icmp", "60")]:
    s = re.sub(r"(?m)^%s = \d+" % key, "%s = %s" % (key, val), s, count=1)
s = re.sub(r"(?m)^idle_timeout = \d+", "idle_timeout = 60", s, count=1)
open(p, "w").write(s)
PY
testbed_up "$RUN/router.toml"
metrics() { x "${P}rt" curl -sf -m 5 http://127.0.0.1:9780/metrics; }
metric() { metrics | awk -v k="$1" '$1 == k {v = $2} END {print v}'; }  # no early exit: curl would fail on SIGPIPE
pid=$ROUTER
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

for h in h1 h2; do
  sed "s/^rekey_secs = .*/rekey_secs = $REKEY\njitter_secs = 5/" "config/client-$h.toml" >"$RUN/client-$h.toml"
done
ip netns exec "${P}srv" "$BIN" responder --config config/responder.toml --control-socket "$RUN/responder.sock" >"$RUN/responder.log" 2>&1 &
PIDS+=($!)
for h in h1 h2; do
  ip netns exec "$P$h" "$BIN" client --config "$RUN/client-$h.toml" --control-socket "$RUN/client-$h.sock" >"$RUN/client-$h.log" 2>&1 &
  PIDS+=($!)
done
for h in h1 h2; do wait_metrics "$P$h" 9782; wait_child_sa "$P$h" 9782; done
head -c 200000 /dev/urandom >"$RUN/blob"
x "${P}srv" timeout $((MINUTES * 60 + 600)) python3 -m http.server 8080 --bind 198.51.100.69 --directory "$RUN" >/dev/null 2>&1 &
PIDS+=($!)

churn() {  # one round: 50 new UDP flows, 5 TCP connections, pings through the tunnels
  x "${P}h1" python3 -c "
import socket
for i in range(50):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('198.51.100.69', 9)); s.close()"
  for _ in 1 2 3 4 5; do x "${P}h2" curl -sf -m 5 -o /dev/null http://198.51.100.69:8080/blob || true; done
  for h in h1 h2; do x "$P$h" ping -c 1 -W 1 10.99.0.1 >/dev/null || true; done
}
move_h2() {  # h2 between 10.6.1.3 and 10.6.1.30 (the client follows its route)
  local from=$1 to=$2
  # One batch: deleting the primary address would also delete a secondary
  # one in the same prefix, so the old address goes first.
  printf 'addr del %s/24 dev %s\naddr add %s/24 dev %s\nroute replace default via 10.6.1.1\n' \
    "$from" "${P}b" "$to" "${P}b" | x "${P}h2" ip -batch -
}

printf '%6s %8s %9s %9s %6s %9s %8s %8s %12s %7s\n' minute rss_kib sessions mappings hosts bindings spis arp rekeys moves
start=$(date +%s) last_min=-1 last_move=$start h2=10.6.1.3 moves=0
while :; do
  now=$(date +%s); el=$((now - start))
  [ "$el" -ge $((MINUTES * 60)) ] && break
  churn
  if [ $((now - last_move)) -ge "$MOVE" ]; then
    if [ "$h2" = 10.6.1.3 ]; then move_h2 10.6.1.3 10.6.1.30; h2=10.6.1.30; else move_h2 10.6.1.30 10.6.1.3; h2=10.6.1.3; fi
    last_move=$now moves=$((moves + 1))
  fi
  min=$((el / 60))
  if [ "$min" != "$last_min" ]; then
    last_min=$min
    rekeys=$(x "${P}h1" curl -sf http://127.0.0.1:9782/metrics | awk '/^spimux_ike_rekeys_total/ {s += $2} END {print s + 0}')
    printf '%6d %8s %9s %9s %6s %9s %8s %8s %12s %7d\n' "$min" "$(rss)" "$(metric spimux_nat_sessions)" \
      "$(metrics | awk '/^spimux_nat_mappings/ {s += $2} END {print s}')" "$(metric spimux_nat_inside_hosts)" \
      "$(metric spimux_esp_bindings)" "$(metric spimux_esp_recorded_spis)" \
      "$(metrics | awk '/^spimux_arp_cache_entries/ {s += $2} END {print s}')" "$rekeys" "$moves"
  fi
  sleep 2
done
echo "churn stopped after $MINUTES min; stopping the endpoints and waiting for the timeouts (TCP transitory 240 s + sweep)"
stop_all
drained=1
for _ in $(seq 60); do
  sleep 10
  s=$(metric spimux_nat_sessions) m=$(metrics | awk '/^spimux_nat_mappings/ {s += $2} END {print s}')
  b=$(metric spimux_esp_bindings) r=$(metric spimux_esp_recorded_spis) ho=$(metric spimux_nat_inside_hosts)
  a=$(metrics | awk '/^spimux_arp_cache_entries/ {s += $2} END {print s}')
  if [ "$s$m$b$r$ho$a" = 000000 ]; then drained=0; break; fi
done
echo "after drain: sessions=$s mappings=$m bindings=$b spis=$r hosts=$ho arp=$a rss=$(rss) KiB"
[ "$drained" = 0 ] && echo "tables drained to zero" || { echo "tables did NOT drain"; exit 1; }
