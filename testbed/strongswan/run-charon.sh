#!/usr/bin/env bash
# run-charon.sh STRONGSWAN_CONF SWANCTL_CONF READY_FILE [CHILD...]
#
# Run inside a network namespace AND a private mount namespace, e.g.
#   ip netns exec NS timeout 300 unshare -m testbed/strongswan/run-charon.sh \
#       testbed/strongswan/strongswan.conf /tmp/x/initiator.conf /tmp/x/ready spimux
# Mounts a tmpfs on /run (charon.pid, charon.vici stay per instance), starts
# charon with STRONGSWAN_CONF, loads SWANCTL_CONF (connections + secrets, all
# paths in it absolute), initiates each CHILD given (swanctl --initiate
# --child CHILD, 10 s timeout each), then writes charon's PID into READY_FILE.
# Exits when charon exits; TERM/INT stop charon.
# To talk to this charon later (it has its own /run):
#   nsenter -t "$(cat READY_FILE)" -m -n swanctl --list-sas
set -euo pipefail
sconf=$(realpath "$1") conf=$(realpath "$2") ready=$3
shift 3
mount -t tmpfs tmpfs /run
export STRONGSWAN_CONF=$sconf
/usr/lib/ipsec/charon &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid' EXIT TERM INT
for _ in $(seq 100); do [ -S /run/charon.vici ] && break; sleep 0.05; done
swanctl --load-all --file "$conf"
for child in "$@"; do swanctl --initiate --child "$child" --timeout 10; done
echo $pid >"$ready.tmp" && mv "$ready.tmp" "$ready"
wait $pid
