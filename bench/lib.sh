# Shared by the bench scripts (sourced; run from the repository root, as root).
# Background processes are started with `ip netns exec` directly and their PIDs
# kept in PIDS, so stop_all stops exactly what the script started.

PIDS=()
ROUTER=

# bench_init TAG: dependencies and the release build, then BIN, a per-run
# prefix P (TAG + 4 hex digits, so a run removes exactly its own) and a run
# directory RUN.
bench_init() {
  bash testbed/install-deps.sh
  cargo build --release --locked --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/spimux
  P=$1$(printf '%04x' $((RANDOM % 65536)))
  RUN=$(mktemp -d "/tmp/spimux-$1-XXXX")
}

# bench_bin NAME: builds the bench target NAME (bench/NAME.rs, release
# settings) and prints the path of its executable.
bench_bin() {
  cargo bench --bench "$1" --no-run --locked --quiet --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}

# testbed_up [ROUTER_CONFIG]: the testbed under prefix P, torn down on exit
# (also on failure) with everything the script started (stop_all, the
# router) and RUN; with ROUTER_CONFIG, spimux's router runs on it.
testbed_up() {
  trap 'stop_all; stop_router; bash testbed/topology.sh down "$P"; rm -rf "$RUN"' EXIT INT TERM
  bash testbed/topology.sh up "$P"
  if [ -n "${1:-}" ]; then start_router "$1"; fi
}

# start_router CONFIG: spimux's router on the testbed's router namespace
# (ROUTER = its PID), returning once its metrics answer.
start_router() {
  ip netns exec "${P}rt" "$BIN" router --config "$1" --inside-interface "${P}ri" --outside-interface "${P}ro" \
    --control-socket "$RUN/router.sock" >"$RUN/router.log" 2>&1 &
  ROUTER=$!
  wait_metrics "${P}rt" 9780
}

# stop_router: stops the router started by start_router, if any.
stop_router() {
  if [ -n "$ROUTER" ]; then kill "$ROUTER" 2>/dev/null || true; wait "$ROUTER" 2>/dev/null || true; fi
  ROUTER=
}
have() { command -v "$1" >/dev/null 2>&1; }
x() { ip netns exec "$@"; }  # foreground only: `$!` of a function is a subshell
wait_file() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }
wait_metrics() { for _ in $(seq 100); do x "$1" curl -sf -o /dev/null "http://127.0.0.1:$2/metrics" && return 0; sleep 0.05; done; return 1; }
source testbed/endpoint.sh
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# strongSwan's charon with kernel-libipsec (installed on first use).
ensure_strongswan() {
  if ! [ -x /usr/lib/ipsec/charon ] || ! have swanctl || ! [ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strongswan strongswan-swanctl libcharon-extra-plugins >/dev/null
  fi
}

# charon_pid NS: the PID of the charon running in namespace NS.
charon_pid() {
  local p
  for p in $(ip netns pids "$1"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = charon ] && { echo "$p"; return 0; }
  done
  return 1
}

# start_charon NS ROLE CONF RUNDIR: charon in NS with a private /run, config
# loaded (and the tunnel up, for ROLE initiator; any other ROLE only loads
# it) before it returns. With CPUS
# set (a taskset list), charon and its threads run on those CPUs only.
start_charon() {
  local ns=$1 role=$2 conf=$3 run=$4
  ip netns exec "$ns" ${CPUS:+taskset -c "$CPUS"} timeout 300 unshare -m "$PWD/bench/strongswan/run-charon.sh" "$role" "$conf" "$run/$role.ready" >"$run/charon-$role.log" 2>&1 &
  PIDS+=($!)
  wait_file "$run/$role.ready"
}
