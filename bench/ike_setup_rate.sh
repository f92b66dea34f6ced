#!/usr/bin/env bash
# IKE setups per second: IKE_SA_INIT + IKE_AUTH + the first CHILD_SA (PSK,
# AES-128-GCM-16, PRF-HMAC-SHA2-256, x25519; ESP AES-128-GCM-16) from one
# load generator (bench/ike_load.rs) in the testbed's wan namespace
# (198.51.100.1) against a responder on srv (198.51.100.69), directly (no
# router in the path). The generator poses as a client behind a NAT
# (--behind-nat: a NAT_DETECTION_SOURCE_IP hash of no address), so IKE_AUTH
# runs on UDP 4500 and the CHILD_SA is UDP-encapsulated on both responders
# (kernel-libipsec installs nothing else). Responders:
#   spimux      `spimux responder` (release build), one peer entry with
#               nat_detection = "auto", [ike] limits raised for one address
#               and one identity (no cookies, no per-source half-open cap,
#               no per-peer IKE SA cap)
#   strongswan  charon 5.9.8 + kernel-libipsec (CHILD_SAs installed into its
#               userspace tables), IKE SA hash table and DoS thresholds
#               raised likewise (bench/strongswan/strongswan-setup-rate.conf)
# Each responder is pinned to CPU 0 with taskset, the generator to CPU 1.
# Every run starts a fresh responder, completes COUNT setups with WINDOW in
# flight (the responder keeps them all: COUNT IKE SAs and CHILD_SAs at the
# end) and reports setups/s over the run and the responder's CPU time per
# setup; runs alternate between the two, RUNS each; medians and ratios at
# the end. Needs root.
#
# usage: bench/ike_setup_rate.sh [RUNS=5] [COUNT=2000] [WINDOW=64]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5} COUNT=${2:-2000} WINDOW=${3:-64}
PSK=spimux-bench-only-psk
RESP_CPU=0 GEN_CPU=1
source bench/lib.sh
bench_init isr
ensure_strongswan
GEN=$(bench_bin ike_load)
SW=$PWD/bench/strongswan
testbed_up

cat >"$RUN/responder.toml" <<EOF
[tun]
name = "spx0"
address = "10.99.0.1/24"
mtu = 1400
[outer]
local = "198.51.100.69"
udp_port = 4500
[spi_layout]
tag_len = 2
spi_offset = 2
digest_offset = 0
[metrics]
listen = "127.0.0.1:9781"
[ike]
# One generator address and one identity hold every SA of the run.
cookie_threshold = 100000
max_half_open = 100000
max_half_open_per_source = 100000
max_ike_sas = 1000000
max_ike_sas_per_peer = 1000000
[[peers]]
name = "h1"
inner = ["10.98.0.2/32"]
[peers.ike]
local_id = "gw"
remote_id = "h1"
psk = "$PSK"
proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
nat_detection = "auto"
dpd_secs = 0
EOF

# cpu_secs NS: user + system CPU seconds of every process in namespace NS.
cpu_secs() {
  local t=0 pid
  for pid in $(ip netns pids "$1"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  python3 -c "print($t / $(getconf CLK_TCK))"
}

# gen STACK: one generator run against the responder now up; appends
# "STACK key=value..." to $RUN/results.
gen() {
  local c0 c1 out
  c0=$(cpu_secs "${P}srv")
  out=$(ip netns exec "${P}wan" taskset -c $GEN_CPU timeout 200 "$GEN" --server 198.51.100.69:500 \
    --bind 198.51.100.1:0 --count "$COUNT" --window "$WINDOW" --psk "$PSK" --behind-nat --deadline-secs 150)
  c1=$(cpu_secs "${P}srv")
  echo "$1 $out resp_cpu_secs=$(python3 -c "print(round($c1 - $c0, 3))")" | tee -a "$RUN/results" >&2
}

run_spimux() {
  ip netns exec "${P}srv" taskset -c $RESP_CPU "$BIN" responder --config "$RUN/responder.toml" --control-socket "$RUN/spimux.sock" >"$RUN/spimux.log" 2>&1 &
  PIDS+=($!)
  wait_metrics "${P}srv" 9781
  gen spimux
  x "${P}srv" curl -sf http://127.0.0.1:9781/metrics | grep -E '^spimux_ike_(sas|child_sas)\{state="(established|installed)"\}' | tr '\n' ' ' >&2
  echo >&2
  stop_all
}

run_strongswan() {
  # kernel-libipsec routes the selector from a local address inside it.
  x "${P}srv" ip addr add 10.99.0.1/24 dev lo
  STRONGSWAN_CONF=$SW/strongswan-setup-rate.conf CPUS=$RESP_CPU start_charon "${P}srv" responder "$SW/setup-rate.conf" "$RUN"
  gen strongswan
  echo "charon: $(grep -c 'CHILD_SA rate{[0-9]*} established' "$RUN/charon-responder.log" || true) CHILD_SAs established" >&2
  stop_all
  x "${P}srv" ip addr del 10.99.0.1/24 dev lo
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for i in $(seq "$RUNS"); do
  if ((i % 2)); then run_spimux; run_strongswan; else run_strongswan; run_spimux; fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$RUN/results" "$COUNT" "$WINDOW" "$RUNS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    stack, *kv = line.split()
    runs.setdefault(stack, []).append(dict(x.split("=") for x in kv))
count, window, n = sys.argv[2:5]
print(f"IKE setups (PSK, x25519, AES-GCM; IKE_SA_INIT + IKE_AUTH + CHILD_SA), {count} per run, "
      f"{window} in flight, median of {n} runs; responder on 1 CPU, generator on the other:")
med = {}
for stack in ("spimux", "strongswan"):
    r = runs.get(stack, [])
    rate = statistics.median(float(x["rate"]) for x in r)
    cpu_us = statistics.median(float(x["resp_cpu_secs"]) / max(int(x["ok"]), 1) * 1e6 for x in r)
    gen_util = statistics.median(float(x["gen_cpu_secs"]) / float(x["secs"]) for x in r)
    p50 = statistics.median(float(x["p50_ms"]) for x in r)
    bad = sum(int(x["failed"]) + int(x["timeouts"]) + int(x["unfinished"]) for x in r)
    med[stack] = (rate, cpu_us)
    print(f"  {stack:<10} {rate:8.0f} setups/s  (runs: {' '.join(str(round(float(x['rate']))) for x in r)})"
          f"  responder CPU {cpu_us:6.0f} us/setup  setup latency p50 {p50:.1f} ms"
          f"  generator CPU {gen_util:.0%}  failed/timed out {bad}")
print(f"  ratio spimux/strongSwan: setups/s {med['spimux'][0] / med['strongswan'][0]:.2f}, "
      f"CPU per setup {med['strongswan'][1] / med['spimux'][1]:.2f} (strongSwan/spimux)")
PY
