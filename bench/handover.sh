#!/usr/bin/env bash
# Handover on the mobility testbed (testbed/mobility.sh), measured the same way for
#   spimux      spimux client (config/mobile.toml) → spimux responder: registration
#   strongswan  charon + kernel-libipsec per namespace, IKEv2 with MOBIKE (RFC 4555)
# A numbered UDP stream runs each way through the tunnel (one packet per 2 ms);
# the mobile host moves direct → NAT → direct → NAT. Prints per move the time
# from the end of the `ip` command to the first packet each way, and the loss.
# Needs root.
#
# usage: bench/handover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init hb
ensure_strongswan
SW=$PWD/bench/strongswan
PY=/usr/bin/python3
cleanup() { stop_all; bash testbed/mobility.sh down "$P"; [ -n "${KEEP:-}" ] || rm -rf "$RUN"; }
trap cleanup EXIT INT TERM
now() { date +%s.%N; }

STREAM_SECS=9
# run STACK: moves the host four times with both streams running; writes $RUN/STACK/.
run() {
  local d=$RUN/$1
  mkdir -p "$d"
  : >"$d/moves"
  ip netns exec "${P}mob" timeout 30 $PY testbed/mobility_stream.py --bind 10.98.0.5:7000 --peer 10.99.0.1:7000 \
    --duration $STREAM_SECS --sent "$d/mob.sent" --received "$d/mob.received" &
  PIDS+=($!)
  ip netns exec "${P}gw" timeout 30 $PY testbed/mobility_stream.py --bind 10.99.0.1:7000 --peer 10.98.0.5:7000 \
    --duration $STREAM_SECS --sent "$d/gw.sent" --received "$d/gw.received" &
  PIDS+=($!)
  sleep 1
  for to in nat direct nat direct; do
    local tb ta
    tb=$(now); bash testbed/mobility.sh move "$P" "$to"; ta=$(now)
    echo "$tb $ta $to" >>"$d/moves"
    sleep 1.8
  done
  wait_file "$d/gw.received"; wait_file "$d/mob.received"
  sleep 0.5
}

bash testbed/mobility.sh up "$P"
bash testbed/mobility.sh move "$P" direct

# spimux
ip netns exec "${P}gw" timeout 120 "$BIN" responder --config config/responder.toml --control-socket "$RUN/responder.sock" >"$RUN/responder.log" 2>&1 &
PIDS+=($!)
wait_metrics "${P}gw" 9781
ip netns exec "${P}mob" timeout 120 "$BIN" client --config config/mobile.toml --control-socket "$RUN/mobile.sock" >"$RUN/mobile.log" 2>&1 &
PIDS+=($!)
wait_metrics "${P}mob" 9782
x "${P}mob" ping -c 2 -i 0.2 -W 2 10.99.0.1 >/dev/null
run spimux
x "${P}mob" curl -sf http://127.0.0.1:9782/metrics | grep -E '^spimux_mobility_(messages|fallbacks|registrations)' >"$RUN/spimux/metrics" || true
stop_all
bash testbed/mobility.sh move "$P" direct

# strongSwan MOBIKE: inner addresses on lo, charon per namespace with a private /run.
x "${P}mob" ip addr add 10.98.0.5/32 dev lo
x "${P}gw" ip addr add 10.99.0.1/32 dev lo
start_charon "${P}gw" responder "$SW/mobile-responder.conf" "$RUN"
start_charon "${P}mob" initiator "$SW/mobile-initiator.conf" "$RUN"
x "${P}mob" ping -c 2 -i 0.2 -W 2 -I 10.98.0.5 10.99.0.1 >/dev/null
run strongswan
stop_all

echo "Handover, ms from the end of the 'ip' command that moved the address to the first"
echo "packet sent after it arriving (stream: 1 packet / 2 ms each way); loss over the move."
$PY bench/handover_report.py "$RUN/spimux" "spimux registration (config/mobile.toml)" "$RUN/spimux/moves"
sed 's/^/    /' "$RUN/spimux/metrics"
$PY bench/handover_report.py "$RUN/strongswan" "strongSwan 5.9 MOBIKE, kernel-libipsec" "$RUN/strongswan/moves"
grep -cE 'UPDATE_SA_ADDRESSES|update SA|MOBIKE' "$RUN/charon-initiator.log" | sed 's/^/    charon log lines about MOBIKE updates: /' || true
