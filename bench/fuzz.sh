#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (fuzz/README.md lists them).
#
#   bench/fuzz.sh ci                   every target over its seeds, bounded
#                                      (FUZZ_CI_SECS, default 8 s, and
#                                      FUZZ_CI_RUNS executions each); fails on
#                                      any crash, panic, timeout or OOM
#   bench/fuzz.sh long [SECONDS]       every target for SECONDS (default 600),
#                                      then a table of executions and exec/s
#                                      (goal: >= 10 M executions per target)
#   bench/fuzz.sh long SECONDS T...    only the named targets
#
# `long` stops a target early once it has run FUZZ_LONG_RUNS executions
# (default: no limit). Sanitizer: FUZZ_SANITIZER (cargo fuzz -s); `ci`
# defaults to address, `long` to none. Every fuzzed path is safe Rust, where
# ASan finds nothing the bounds and overflow checks (on in both) do not, and
# ASan's allocator costs the stateful targets a factor of 10-17 in exec/s.
#
# Needs cargo-fuzz (installed here when missing) and a C++ compiler (libFuzzer
# is C++). Runs on a stable compiler: RUSTC_BOOTSTRAP=1 allows the sanitizer
# flags. The build goes to $SPIMUX_FUZZ_TARGET_DIR (default fuzz/target, inside
# the clone and apart from the main crate's target/). Working corpora grow in
# fuzz/corpus/TARGET, crashes land in fuzz/artifacts/TARGET (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-ci}
export RUSTC_BOOTSTRAP=1
case $mode in long) sanitizer=${FUZZ_SANITIZER:-none} ;; *) sanitizer=${FUZZ_SANITIZER:-address} ;; esac
# One build directory per sanitizer: switching would otherwise rebuild all.
export CARGO_TARGET_DIR=${SPIMUX_FUZZ_TARGET_DIR:-$root/fuzz/target}/$sanitizer
# One set of build flags for `build` and every `run` (a difference rebuilds).
build_flags=(--sanitizer "$sanitizer")
[ -z "${FUZZ_CODEGEN_UNITS:-}" ] || build_flags+=(--codegen-units "$FUZZ_CODEGEN_UNITS")

ensure_tools() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  if ! command -v c++ >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then echo "fuzz: need a C++ compiler (g++) for libFuzzer" >&2; exit 1; fi
    echo "fuzz: installing g++"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  fi
}

targets() { (cd fuzz && cargo fuzz list); }

# run TARGET LOG LIBFUZZER_ARGS...: one bounded run; the status of cargo fuzz.
run() {
  local t=$1 log=$2
  shift 2
  mkdir -p "fuzz/corpus/$t"
  (cd fuzz && nice -n 10 cargo fuzz run "${build_flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 "$@") >"$log" 2>&1
}

# stat LOG NAME: a libFuzzer final statistic.
stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

ensure_tools
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
mapfile -t all < <(targets)
case $mode in
  ci)
    secs=${FUZZ_CI_SECS:-8}
    # A development build (overflow checks and ASan kept) compiles in about
    # half the time; CI runs seconds, not millions. FUZZ_CI_RELEASE=1: as `long`.
    [ -n "${FUZZ_CI_RELEASE:-}" ] || build_flags+=(--dev)
    runs=${FUZZ_CI_RUNS:-20000000}
    selected=("${@:2}")
    ((${#selected[@]})) || selected=("${all[@]}")
    t0=$SECONDS
    (cd fuzz && nice -n 10 cargo fuzz build "${build_flags[@]}")
    echo "fuzz: built ${#all[@]} targets in $((SECONDS - t0)) s; ${secs} s each"
    failed=()
    for t in "${selected[@]}"; do
      if run "$t" "$logs/$t.log" -max_total_time="$secs" -runs="$runs"; then
        printf 'fuzz: %-18s ok   %10s runs %8s exec/s\n' "$t" \
          "$(stat "$logs/$t.log" number_of_executed_units)" "$(stat "$logs/$t.log" average_exec_per_sec)"
      else
        failed+=("$t")
        echo "fuzz: $t FAILED:" >&2
        grep -m1 -A12 -E "panicked at|ERROR: libFuzzer|==ERROR|^error" "$logs/$t.log" >&2 || tail -30 "$logs/$t.log" >&2
        grep -E "^Test unit written to|artifact_prefix" "$logs/$t.log" >&2 || true
      fi
    done
    echo "fuzz: ${#selected[@]} targets in $((SECONDS - t0)) s"
    if ((${#failed[@]})); then
      echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/; fuzz/README.md says how to reproduce)" >&2
      exit 1
    fi
    ;;
  long)
    secs=${2:-600}
    selected=("${@:3}")
    ((${#selected[@]})) || selected=("${all[@]}")
    (cd fuzz && nice -n 10 cargo fuzz build "${build_flags[@]}")
    status=0
    rows=()
    for t in "${selected[@]}"; do
      keep="$root/fuzz/artifacts/$t-long.log"
      mkdir -p "$root/fuzz/artifacts"
      if run "$t" "$keep" -max_total_time="$secs" -runs="${FUZZ_LONG_RUNS:--1}"; then result=ok; else result=FAILED; status=1; fi
      n=$(stat "$keep" number_of_executed_units)
      rows+=("$(printf '%-18s %12s %10s %8s %s' "$t" "${n:-0}" "$(stat "$keep" average_exec_per_sec)" \
        "$( [ "${n:-0}" -ge 10000000 ] && echo yes || echo no)" "$result")")
      echo "fuzz: $t $result (${n:-0} runs; log $keep)"
    done
    echo "fuzz: sanitizer $sanitizer"
    printf '\n%-18s %12s %10s %8s %s\n' target executions exec/s '>=10M' result
    printf '%s\n' "${rows[@]}"
    exit $status
    ;;
  *)
    echo "usage: bench/fuzz.sh ci [TARGET...] | long [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
