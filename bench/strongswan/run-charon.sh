#!/usr/bin/env bash
# run-charon.sh ROLE SWANCTL_CONF READY_FILE — inside a network namespace and a
# private mount namespace: tmpfs on /run, charon, load the config, and (for
# the initiator) bring the tunnel up. Exits when charon exits. STRONGSWAN_CONF
# may name another strongswan.conf (default: the one beside this script).
set -euo pipefail
role=$1 conf=$2 ready=$3
here=$(cd "$(dirname "$0")" && pwd)
mount -t tmpfs tmpfs /run
export STRONGSWAN_CONF=${STRONGSWAN_CONF:-$here/strongswan.conf}
/usr/lib/ipsec/charon &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid' EXIT TERM INT
for _ in $(seq 100); do [ -S /run/charon.vici ] && break; sleep 0.05; done
swanctl --load-all --file "$conf" >/dev/null
if [ "$role" = initiator ]; then swanctl --initiate --child bench --timeout 10 >/dev/null; fi
touch "$ready"
wait $pid
