#!/usr/bin/env bash
# selftest.sh [nat|nonat] [psk ecdsa rsa] — strongSwan-to-strongSwan check of
# the configs in this directory on the namespace testbed:
#   h1 (strongSwan initiator, inner 10.98.0.2) → rt → wan → srv (strongSwan
#   responder, 10.99.0.1/24 on lo)
#   nat    rt does Linux NAT (topology.sh kernel-nat on): h1 is behind a NAT
#   nonat  rt routes without NAT (kernel-nat on, masquerade table removed, wan
#          routes 10.6.1.0/24 back via rt): no NAT between h1 and srv
# For each pair: the tunnel comes up and `ping -c 3 -W 2 10.99.0.1` from h1
# gets through it; prints both sides' `swanctl --list-sas` and the NAT-T
# related log lines. Needs root. Exit status 0 only if every pair pinged.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-nat}; shift || true
PAIRS=${*:-psk ecdsa rsa}
[[ $MODE =~ ^(nat|nonat)$ ]] || { echo "mode must be nat or nonat" >&2; exit 2; }
SW=$PWD/testbed/strongswan PKI=$PWD/tests/data/ike/pki
P=ss$(printf '%04x' $((RANDOM % 65536)))
RUN=$(mktemp -d /tmp/spimux-sstest-XXXX)
PIDS=()
x() { ip netns exec "$@"; }
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_all; bash testbed/topology.sh down "$P"; [ -n "${KEEP:-}" ] && echo "kept $RUN" || rm -rf "$RUN"; }
trap cleanup EXIT INT TERM
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }
charon() {  # NS ROLE SWANCTL_CONF [CHILD...]: start, wait until loaded/initiated
  local ns=$1 role=$2 conf=$3; shift 3
  ip netns exec "$ns" timeout 120 unshare -m "$SW/run-charon.sh" "$SW/strongswan.conf" "$conf" "$RUN/$role.ready" "$@" >"$RUN/$role.log" 2>&1 &
  PIDS+=($!)
  wait_file "$RUN/$role.ready"
}
sw() { local role=$1; shift; nsenter -t "$(cat "$RUN/$role.ready")" -m -n swanctl "$@"; }

bash testbed/topology.sh up "$P"
bash testbed/topology.sh kernel-nat "$P" on
if [ "$MODE" = nonat ]; then
  x "${P}rt" nft delete table ip "${P}nat"
  x "${P}wan" ip route add 10.6.1.0/24 via 203.0.113.10
fi
x "${P}h1" ip addr add 10.98.0.2/32 dev lo
x "${P}srv" ip addr add 10.99.0.1/24 dev lo

fail=0
for pair in $PAIRS; do
  rm -f "$RUN"/*.ready
  rm -rf "$RUN/i" "$RUN/r"; mkdir -p "$RUN"/{i,r}/{x509,x509ca,private}
  case $pair in
    psk)
      "$SW/render.sh" "$SW/responder-psk.conf.in" PEER_ID=h1 >"$RUN/r/swanctl.conf"
      "$SW/render.sh" "$SW/initiator-psk.conf.in" HOST_ADDR=10.6.1.2 INNER=10.98.0.2/32 ID=h1 >"$RUN/i/swanctl.conf" ;;
    ecdsa|rsa)
      # swanctl loads x509/, x509ca/, private/ beside the config file
      cp "$PKI/$pair/gw.pem" "$RUN/r/x509/"; cp "$PKI/$pair/gw.key" "$RUN/r/private/"
      cp "$PKI/$pair/h1.pem" "$RUN/i/x509/"; cp "$PKI/$pair/h1.key" "$RUN/i/private/"
      cp "$PKI/$pair/ca.pem" "$RUN/r/x509ca/"; cp "$PKI/$pair/ca.pem" "$RUN/i/x509ca/"
      "$SW/render.sh" "$SW/responder-cert.conf.in" PEER_ID=h1.spimux.test CERT=gw.pem CACERT=ca.pem >"$RUN/r/swanctl.conf"
      "$SW/render.sh" "$SW/initiator-cert.conf.in" HOST_ADDR=10.6.1.2 INNER=10.98.0.2/32 ID=h1.spimux.test \
        CERT=h1.pem CACERT=ca.pem >"$RUN/i/swanctl.conf" ;;
    *) echo "unknown pair $pair" >&2; exit 2 ;;
  esac
  echo "=== $MODE / $pair"
  charon "${P}srv" responder "$RUN/r/swanctl.conf"
  if charon "${P}h1" initiator "$RUN/i/swanctl.conf" spimux &&
     x "${P}h1" ping -c 3 -W 2 10.99.0.1; then
    echo "RESULT $MODE/$pair: tunnel up, ping OK"
  else
    echo "RESULT $MODE/$pair: FAILED"; fail=1
  fi
  for role in initiator responder; do
    echo "--- $role: swanctl --list-sas"
    sw $role --list-sas 2>/dev/null || true
  done
  echo "--- NAT-T log lines (initiator, responder)"
  grep -hE "NAT|float|encap|IKE_AUTH|authentication of" "$RUN/initiator.log" "$RUN/responder.log" || true
  stop_all
done
exit $fail
