#!/usr/bin/env bash
# A management network for monitoring the namespace testbed (testbed/topology.sh).
#
#   ${P}mon 10.250.0.1 [bridge] ── rt 10.250.0.2 · h1 10.250.0.3 · h2 10.250.0.4 · srv 10.250.0.5
#
# Usage: monitor.sh up PREFIX [HOST...] | down PREFIX | address HOST
# `up` creates namespace ${P}mon (where Prometheus runs) with a bridge, and one
# veth from it into each named testbed namespace (default: rt h1 srv) with the
# host's 10.250.0.x address. The data paths are untouched: the router's data
# interfaces keep no kernel address, and no default route changes. A daemon
# started with metrics.listen 0.0.0.0:PORT (or its 10.250.0.x address) is then
# reachable from ${P}mon. `down` removes ${P}mon, which takes every veth with it.
set -euo pipefail

cmd=${1:?usage: monitor.sh up|down PREFIX [HOST...] | address HOST}

address() {
  case $1 in
    mon) echo 10.250.0.1 ;; rt) echo 10.250.0.2 ;; h1) echo 10.250.0.3 ;;
    h2) echo 10.250.0.4 ;; srv) echo 10.250.0.5 ;;
    *) echo "no management address for $1" >&2; exit 2 ;;
  esac
}

if [ "$cmd" = address ]; then address "${2:?host}"; exit 0; fi

P=${2:?prefix required}
[[ $P =~ ^[a-z0-9]{2,7}$ ]] || { echo "bad prefix $P" >&2; exit 2; }
MON=${P}mon
x() { ip netns exec "$@"; }

up() {
  shift 2
  local hosts=("$@")
  ((${#hosts[@]})) || hosts=(rt h1 srv)
  ip netns add "$MON"
  x "$MON" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  x "$MON" ip link set lo up
  x "$MON" ip link add ${P}mb type bridge
  x "$MON" ip addr add "$(address mon)/24" dev ${P}mb
  x "$MON" ip link set ${P}mb up
  for h in "${hosts[@]}"; do
    local a
    a=$(address "$h")
    ip link add ${P}m$h netns "${P}$h" type veth peer name ${P}n$h netns "$MON"
    x "$MON" ip link set ${P}n$h master ${P}mb up
    x "${P}$h" ip addr add "$a/24" dev ${P}m$h
    x "${P}$h" ip link set ${P}m$h up
  done
}

down() {
  if ip netns list | awk '{print $1}' | grep -qx "$MON"; then
    ip netns pids "$MON" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$MON"
  fi
}

case $cmd in
  up) down; trap 'down' ERR; up "$@"; trap - ERR ;;
  down) down ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
