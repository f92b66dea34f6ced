#!/usr/bin/env bash
# Time from starting the client to the first packet through its tunnel, on
# the testbed (h1 → spimux router → srv), for:
#   spimux      `spimux client` (config/client-h1.toml) → `spimux responder`
#               (config/responder.toml): plain ESP, keys from IKE (PSK, x25519)
#   strongswan  charon + swanctl (load, initiate) on h1 → charon on srv, both
#               kernel-libipsec, ESP in UDP/4500 (the NAT forces it), PSK,
#               ecp256 (bench/strongswan/{initiator,responder}.conf)
#   ssw-spimux  the same strongSwan initiator → `spimux responder`
#               (config/responder.toml with nat_detection = "auto" for h1 and
#               the bench PSK)
#   ssw-warm    strongSwan → strongSwan with the initiating charon already
#               running and its config loaded: `swanctl --initiate` → first
#               packet (the IKE exchanges and installs without the daemon's
#               start); the IKE SA is terminated after each run
# The responder stays up; each run starts the client afresh and, at the same
# moment, `ping -D -i 0.002` from h1 to 10.99.0.1 (from the inner address
# for strongSwan, whose lo carries it) until the first echo reply; before the
# tunnel is up the pings leave by h1's default route and are refused by the
# WAN router, which has no route to 10.99.0.0/24 (its errors are skipped).
# Time = client spawn → ping's timestamp of the first reply (pings every
# 2 ms, so up to 2 ms late). The client is stopped after each run. Prints the median, min and max of RUNS runs per
# case. Release build; nothing pinned. Needs root.
#
# usage: bench/ike_first_packet.sh [RUNS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
source bench/lib.sh
bench_init fp
ensure_strongswan
SW=$PWD/bench/strongswan
testbed_up config/router.toml
now() { date +%s.%N; }

# first_reply SRC: pings 10.99.0.1 from h1 (source SRC, or h1's route if
# empty) every 2 ms, at most 20 s; prints the Unix time of the first echo
# reply (nothing if none came).
first_reply() {
  { x "${P}h1" timeout 20 stdbuf -oL ping -D -n -i 0.002 ${1:+-I "$1"} 10.99.0.1 || true; } |
    sed -n -u 's/^\[\([0-9.]*\)\] [0-9]* bytes from .*/\1/p' | head -n 1 || true
}

# measure CASE SRC START [STOP]: RUNS times: START the client in the
# background (its PID appended to PIDS), ping until the first reply, stop the
# client (and run STOP).
measure() {
  local case=$1 src=$2 start=$3 stop=${4:-true} t0 t1
  for i in $(seq "$RUNS"); do
    t0=$(now)
    "$start"
    t1=$(first_reply "$src")
    if [ -n "$t1" ]; then
      echo "$case $(python3 -c "print(round(($t1 - $t0) * 1000, 1))")" >>"$RUN/results"
    else
      echo "$case timeout" >>"$RUN/results"
    fi
    kill "${PIDS[-1]}" 2>/dev/null || true
    wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
    "$stop"
    sleep 0.5
  done
}

spimux_client() {
  ip netns exec "${P}h1" "$BIN" client --config config/client-h1.toml --control-socket "$RUN/client.sock" >>"$RUN/client.log" 2>&1 &
  PIDS+=($!)
}
charon_client() {
  ip netns exec "${P}h1" timeout 120 unshare -m "$SW/run-charon.sh" initiator "$SW/initiator.conf" /dev/null >>"$RUN/charon-client.log" 2>&1 &
  PIDS+=($!)
}

# spimux → spimux (shipped configs: plain ESP).
ip netns exec "${P}srv" "$BIN" responder --config config/responder.toml --control-socket "$RUN/responder.sock" >"$RUN/responder.log" 2>&1 &
PIDS+=($!)
wait_metrics "${P}srv" 9781
measure spimux "" spimux_client

# strongSwan initiator → spimux responder: the bench PSK, NAT detection on
# (kernel-libipsec needs UDP encapsulation).
x "${P}h1" ip addr add 10.98.0.2/32 dev lo
stop_all
sed -e 's/spimux-test-only-psk/spimux-bench-only-psk/' -e '0,/^nat_detection = "off"/s//nat_detection = "auto"/' \
  config/responder.toml >"$RUN/responder-ssw.toml"
ip netns exec "${P}srv" "$BIN" responder --config "$RUN/responder-ssw.toml" --control-socket "$RUN/responder-ssw.sock" >"$RUN/responder-ssw.log" 2>&1 &
PIDS+=($!)
wait_metrics "${P}srv" 9781
measure ssw-spimux 10.98.0.2 charon_client
stop_all

# strongSwan → strongSwan.
x "${P}srv" ip addr add 10.99.0.1/24 dev lo
start_charon "${P}srv" responder "$SW/responder.conf" "$RUN"
measure strongswan 10.98.0.2 charon_client

# The same with the initiator's charon up and loaded beforehand.
start_charon "${P}h1" standby "$SW/initiator.conf" "$RUN"
CHARON=$(charon_pid "${P}h1")
initiate() {
  nsenter -t "$CHARON" -m -n swanctl --initiate --child bench --timeout 10 >/dev/null 2>&1 &
  PIDS+=($!)
}
terminate() { nsenter -t "$CHARON" -m -n swanctl --terminate --ike bench --timeout 5 >/dev/null 2>&1 || true; }
measure ssw-warm 10.98.0.2 initiate terminate

python3 - "$RUN/results" "$RUNS" <<'PY'
import statistics, sys
res = {}
for line in open(sys.argv[1]):
    case, v = line.split()
    res.setdefault(case, []).append(None if v == "timeout" else float(v))
print(f"Client start to first ping reply through the tunnel, ms (median of {sys.argv[2]} runs, min–max):")
names = {"spimux": "spimux client -> spimux responder (plain ESP)",
         "ssw-spimux": "strongSwan initiator -> spimux responder (UDP)",
         "strongswan": "strongSwan initiator -> strongSwan responder (UDP)",
         "ssw-warm": "  same, charon already running: swanctl --initiate"}
med = {}
for case in ("spimux", "ssw-spimux", "strongswan", "ssw-warm"):
    v = [x for x in res.get(case, []) if x is not None]
    lost = len(res.get(case, [])) - len(v)
    if not v:
        print(f"  {names[case]:<52} no reply")
        continue
    med[case] = statistics.median(v)
    print(f"  {names[case]:<52} {med[case]:7.1f}  ({min(v):.1f}–{max(v):.1f})" + (f"  {lost} timed out" if lost else ""))
if "spimux" in med and "strongswan" in med:
    print(f"  ratio strongSwan/spimux: {med['strongswan'] / med['spimux']:.2f}")
PY
