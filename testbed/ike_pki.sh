#!/usr/bin/env bash
# ike_pki.sh [OUTDIR=tests/data/ike/pki] — (re)make the PUBLIC TEST PKI used by
# the IKEv2 captures and the strongSwan end-to-end configs, with strongSwan's
# `pki` (Debian package strongswan-pki). Two independent hierarchies:
#   ecdsa/  CA, gateway (gw.spimux.test) and clients (h1.spimux.test,
#           h2.spimux.test), ECDSA P-256
#   rsa/    the same with RSA 2048
# Every key is committed on purpose: these are test keys, never use them for
# anything else. Regenerating changes every key and signature, so the captured
# vectors under tests/data/ike/cert-* would then no longer match: re-run
# testbed/ike_capture.sh afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-tests/data/ike/pki}
command -v pki >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strongswan-pki >/dev/null
# Fixed validity 2024-01-01 .. 2045-12-31 (not "now"): the vectors and e2e
# tests must neither expire under us nor depend on the clock at generation.
VALID=(--dateform "%Y-%m-%d %T" --not-before "2024-01-01 00:00:00" --not-after "2045-12-31 23:59:59")
# pki's libstrongswan lists the plugins it lacks on stderr; keep real errors only.
pki() { command pki "$@" 2> >(grep -v "failed to load" >&2); }

mk() {  # mk DIR TYPE SIZE
  local d=$OUT/$1 type=$2 size=$3 org="O=spimux test (PUBLIC TEST KEYS)"
  mkdir -p "$d"
  pki --gen --type "$type" --size "$size" --outform pem >"$d/ca.key"
  pki --self --ca "${VALID[@]}" --in "$d/ca.key" --type "$type" \
      --dn "C=XX, $org, CN=spimux test CA $1" --outform pem >"$d/ca.pem"
  for h in gw h1 h2; do
    local flag=clientAuth; [ $h = gw ] && flag=serverAuth
    pki --gen --type "$type" --size "$size" --outform pem >"$d/$h.key"
    pki --pub --in "$d/$h.key" --type "$type" |
      pki --issue "${VALID[@]}" --cacert "$d/ca.pem" --cakey "$d/ca.key" --type pub \
          --dn "C=XX, $org, CN=$h.spimux.test" --san "$h.spimux.test" \
          --flag "$flag" --outform pem >"$d/$h.pem"
  done
  chmod 0644 "$d"/*
}
mk ecdsa ecdsa 256
mk rsa rsa 2048
for f in "$OUT"/*/*.pem; do echo "== $f"; pki --print --in "$f" | sed -n '1,12p'; done
