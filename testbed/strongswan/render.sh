#!/usr/bin/env bash
# render.sh TEMPLATE KEY=VALUE... — print TEMPLATE with every @KEY@ replaced;
# fails if a placeholder is left over. Example:
#   testbed/strongswan/render.sh testbed/strongswan/initiator-psk.conf.in \
#       HOST_ADDR=10.6.1.2 INNER=10.98.0.2/32 ID=h1 >/tmp/x/initiator.conf
set -euo pipefail
t=$1; shift
s=$(cat "$t")
for kv in "$@"; do k=${kv%%=*} v=${kv#*=}; s=${s//@$k@/$v}; done
if grep -o '@[A-Z_]*@' <<<"$s" | sort -u | grep .; then echo "render.sh: unset placeholders above in $t" >&2; exit 1; fi
printf '%s\n' "$s"
