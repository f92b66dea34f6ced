#!/usr/bin/env bash
# Floods at the generator's full rate against spimux's router while an
# established TCP stream (h1 → server, iperf3 capped at STREAM_MBIT, the
# "uplink") and an established plain-ESP pair (h2 ↔ server, 20 packets/s)
# run: reports, per flood, the stream's throughput kept against the same
# stream without a flood, the ESP pair's replies (own SPI / foreign), the
# router's drops by reason, its table sizes and RSS. Needs root.
#
# usage: bench/flood.sh [SECONDS=10] [STREAM_MBIT=500]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10} MBIT=${2:-500}
source bench/lib.sh
bench_init fl
testbed_up config/router.toml
metrics() { x "${P}rt" curl -sf -m 5 http://127.0.0.1:9780/metrics; }
metric() { metrics | awk -v k="$1" '$1 == k {v = $2} END {print v}'; }  # no early exit: curl would fail on SIGPIPE
x "${P}h1" ping -c 1 -W 2 198.51.100.69 >/dev/null
x "${P}h2" ping -c 1 -W 2 198.51.100.69 >/dev/null
x "${P}srv" iperf3 -s -B 198.51.100.69 -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
# ESP pair: the responder derives its SPI from h2's (DESIGN.md §1).
S_O=0x0a0b0c0d
S_R=$("$BIN" spi derive "$S_O")
x "${P}srv" timeout 3600 python3 testbed/esp_peer.py responder --bind 198.51.100.69 --pairs "$S_R:$S_O" --seconds 3000 --ready "$RUN/esp-ready" >/dev/null 2>&1 &
PIDS+=($!)
wait_file "$RUN/esp-ready"
# h1 records an outbound SPI nobody answers: the spoofed flood then meets a
# pending SPI and goes through the rate-limited match, not only the pre-filter.
x "${P}h1" python3 testbed/esp_peer.py send --dst 198.51.100.69 --spi 0x55550001 --count 1
pid=$(ip netns pids "${P}rt" | while read -r p; do [ "$(cat /proc/$p/comm 2>/dev/null)" = spimux ] && echo "$p"; done | head -1)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

# run_case NAME [FLOOD_KIND]: the stream and the ESP pair for SECS, with the flood.
run_case() {
  local name=$1 kind=${2:-} fpid=
  local before; before=$(metrics)
  x "${P}h2" timeout $((SECS + 20)) python3 testbed/esp_peer.py host --dst 198.51.100.69 \
    --spi-out "$S_R" --spi-in "$S_O" --count $((SECS * 20)) --interval 0.05 --timeout $((SECS + 3)) \
    --tag h2 >"$RUN/esp-$name.json" &
  local epid=$!
  x "${P}h1" timeout $((SECS + 20)) iperf3 -c 198.51.100.69 -p 5201 -t "$SECS" -b "${MBIT}M" -J >"$RUN/tcp-$name.json" &
  local ipid=$!
  case $kind in
    "") ;;
    metrics-idle)
      x "${P}rt" timeout $((SECS + 20)) python3 -c "
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
c = []
for _ in range(1000):
    s = socket.socket(); s.settimeout(2)
    try: s.connect(('127.0.0.1', 9780))
    except OSError: pass
    c.append(s)
time.sleep($SECS)" &
      fpid=$! ;;
    *) bash testbed/flood.sh "$kind" "$P" 100000000 "" "$SECS" & fpid=$! ;;
  esac
  local scrape=ok
  sleep $((SECS / 2)); metrics >/dev/null || scrape=FAILED
  wait "$ipid" || true; wait "$epid" || true
  [ -n "$fpid" ] && { wait "$fpid" || true; }
  sleep 1.2  # one publish interval
  local after; after=$(metrics)
  local bps; bps=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$RUN/tcp-$name.json" 2>/dev/null || echo 0)
  local esp; esp=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%d/%d own, %d foreign" % (d["own"], d["sent"], d["foreign"]))' "$RUN/esp-$name.json" 2>/dev/null || echo "no result")
  local drops; drops=$(python3 - "$before" "$after" <<'PY'
import sys, re
def parse(t):
    return {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l.startswith("spimux_") and " " in l}
b, a = parse(sys.argv[1]), parse(sys.argv[2])
out = []
for k, v in a.items():
    if (k.startswith("spimux_drops_total") or k.startswith("spimux_icmp_errors_suppressed") or k == "spimux_arp_cache_full_total") and v - b.get(k, 0) > 0:
        label = re.sub(r'.*reason="([^"]+)".*', r'\1', k) if "reason" in k else k.replace("spimux_", "")
        if k.startswith("spimux_icmp_errors_suppressed"):
            label = "icmp_not_sent:" + label
        out.append("%s=%d" % (label, v - b.get(k, 0)))
print(" ".join(out) or "-")
PY
)
  local tables
  tables="sessions=$(metric spimux_nat_sessions) hosts=$(metric spimux_nat_inside_hosts) bindings=$(metric spimux_esp_bindings) spis=$(metric spimux_esp_recorded_spis) arp_in=$(metric 'spimux_arp_cache_entries{interface="inside"}')"
  printf '%-12s %8.1f Mbit/s  esp %-24s scrape %-6s rss %6s KiB  %s\n    drops: %s\n' \
    "$name" "$(echo "$bps / 1000000" | bc -l)" "$esp" "$scrape" "$(rss)" "$tables" "$drops"
  echo "$bps" >"$RUN/bps-$name"
}

echo "floods at full rate for ${SECS}s each; established: TCP h1→server capped at ${MBIT} Mbit/s, plain ESP h2↔server 20 pkt/s"
run_case baseline
for k in esp-spi new-flows arp ttl1 metrics-idle; do run_case "$k" "$k"; done
run_case after
base=$(cat "$RUN/bps-baseline")
echo
echo "throughput kept (vs baseline $(echo "$base / 1000000" | bc -l | xargs printf '%.1f') Mbit/s):"
for k in esp-spi new-flows arp ttl1 metrics-idle after; do
  printf '  %-12s %5.1f %%\n' "$k" "$(echo "100 * $(cat "$RUN/bps-$k") / $base" | bc -l)"
done
