#!/usr/bin/env bash
# ike_capture.sh [SCENARIO...] — capture real strongSwan 5.9 IKEv2 exchanges
# as byte vectors for spimux's IKEv2 decoder tests, under tests/data/ike/.
#
# Scenarios (default: all):
#   psk-gcm-x25519  PSK, aes128gcm16-prfsha256-x25519 / ESP aes128gcm16:
#                   IKE_SA_INIT, IKE_AUTH, CHILD_SA rekey, IKE SA rekey,
#                   DPD (empty INFORMATIONAL), delete
#   psk-cbc-ecp256  PSK, aes256-sha256-prfsha256-ecp256 / ESP aes128-sha256:
#                   IKE_SA_INIT, IKE_AUTH
#   cert-ecdsa      ECDSA P-256 certificates (tests/data/ike/pki/ecdsa),
#                   aes128gcm16-prfsha256-x25519, charon.fragment_size = 600:
#                   IKE_SA_INIT, IKE_AUTH fragmented (SKF, RFC 7383)
#   cert-rsa        RSA 2048 certificates (tests/data/ike/pki/rsa), same
#                   proposals, charon.fragment_size = 1500: IKE_AUTH unfragmented
#
# Topology: testbed/topology.sh with `kernel-nat on` (Linux NAT in the router
# namespace): strongSwan initiator on h1 (10.6.1.2, behind the NAT, inner
# 10.98.0.2) → rt (203.0.113.10) → wan → strongSwan responder on srv
# (198.51.100.69, inner 10.99.0.1/24). NAT-T floats IKE to UDP 4500 after
# IKE_SA_INIT. tcpdump runs on srv's interface (what the responder sees).
# Per scenario it writes tests/data/ike/<scenario>/:
#   NN-<exchange>-<req|resp>-<i|r>[-fragKofN].bin   IKE message bytes only
#   messages.txt      index of the messages (order, direction, exchange, ...)
#   capture.pcap      the tcpdump capture (IKE and the ESP pings)
#   keys.txt          keys from charon's ike/chd level-4 debug log (the
#                     save-keys plugin is not in Debian's 5.9.8)
#   ikev2_decryption_table, esp_sa   the same keys as Wireshark UAT files
#   initiator.swanctl.conf responder.swanctl.conf strongswan.conf  as used
#   tshark-decrypted.txt  tshark's decryption of every IKE message with them
#   README            configuration, regeneration command, message list
# Needs root. A run takes ~10-20 s per scenario. KEEP=1 keeps the run
# directory (charon logs) in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(psk-gcm-x25519 psk-cbc-ecp256 cert-ecdsa cert-rsa)
[ $# -gt 0 ] || set -- "${ALL[@]}"
for s in "$@"; do [[ " ${ALL[*]} " == *" $s "* ]] || { echo "unknown scenario $s (known: ${ALL[*]})" >&2; exit 2; }; done
OUT=$PWD/tests/data/ike
SW=$PWD/testbed/strongswan PKI=$OUT/pki
for t in swanctl tcpdump tshark ethtool nft; do command -v $t >/dev/null || { echo "missing $t: apt-get install -y strongswan strongswan-swanctl libcharon-extra-plugins strongswan-pki tcpdump tshark; bash testbed/install-deps.sh" >&2; exit 1; }; done
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || { echo "missing kernel-libipsec: apt-get install -y libcharon-extra-plugins" >&2; exit 1; }

P=ik$(printf '%04x' $((RANDOM % 65536)))
RUN=$(mktemp -d /tmp/spimux-ikecap-XXXX)
PIDS=() TCPDUMP=
x() { ip netns exec "$@"; }
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
stop_tcpdump() {
  if [ -n "$TCPDUMP" ]; then kill -INT "$TCPDUMP" 2>/dev/null || true; wait "$TCPDUMP" 2>/dev/null || true; fi
  TCPDUMP=
}
cleanup() {
  stop_tcpdump; stop_all
  bash testbed/topology.sh down "$P"
  if [ -n "${KEEP:-}" ]; then echo "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT INT TERM
wait_for() {  # FILE REGEX [TENTHS=100]: bounded poll until REGEX appears in FILE
  for _ in $(seq "${3:-100}"); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for /$2/ in $1" >&2; return 1
}
wait_count() {  # FILE REGEX N: bounded poll until REGEX matches N lines of FILE
  for _ in $(seq 100); do [ "$(grep -cE "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0; sleep 0.1; done
  echo "timeout waiting for $3 x /$2/ in $1" >&2; return 1
}
charon() {  # NS ROLE DIR: charon with DIR/strongswan.conf + DIR/ROLE/swanctl.conf
  local ns=$1 role=$2 d=$3
  ip netns exec "$ns" timeout 90 unshare -m "$SW/run-charon.sh" "$d/strongswan.conf" "$d/$role/swanctl.conf" "$d/$role.ready" >"$d/$role.log" 2>&1 &
  PIDS+=($!)
  wait_for "$d/$role.ready" '^[0-9]+$' 150
}
sw() {  # DIR ROLE ARGS...: swanctl against that charon (its private /run); libstrongswan's
  # list of plugins it could not load (it reads /etc/strongswan.conf) is noise
  local d=$1 role=$2; shift 2
  nsenter -t "$(cat "$d/$role.ready")" -m -n swanctl "$@" 2> >(grep -v "failed to load" >&2)
}

# swanctl.conf for one side: ROLE AUTH(psk|ecdsa|rsa) IKE_PROPOSAL ESP_PROPOSAL DPD_DELAY MOBIKE
swanctl_conf() {
  local role=$1 auth=$2 ike=$3 esp=$4 dpd=$5 mobike=$6 me peer addrs ts_l ts_r
  if [ "$role" = initiator ]; then
    addrs="local_addrs = 10.6.1.2
    remote_addrs = 198.51.100.69"; ts_l=10.98.0.2/32 ts_r=10.99.0.0/24; me=h1 peer=gw
  else
    addrs="local_addrs = 198.51.100.69
    remote_addrs = %any"; ts_l=10.99.0.0/24 ts_r=10.98.0.2/32; me=gw peer=h1
  fi
  local lauth rauth
  if [ "$auth" = psk ]; then
    lauth="auth = psk
      id = $me" rauth="auth = psk
      id = $peer"
  else
    lauth="auth = pubkey
      certs = $me.pem
      id = $me.spimux.test" rauth="auth = pubkey
      id = $peer.spimux.test
      cacerts = ca.pem"
  fi
  cat <<CONF
connections {
  cap {
    version = 2
    $addrs
    proposals = $ike
    dpd_delay = $dpd
    mobike = $mobike
    local {
      $lauth
    }
    remote {
      $rauth
    }
    children {
      cap {
        local_ts = $ts_l
        remote_ts = $ts_r
        esp_proposals = $esp
        mode = tunnel
      }
    }
  }
}
CONF
  if [ "$auth" = psk ]; then cat <<CONF
secrets {
  ike-cap {
    id-1 = h1
    id-2 = gw
    secret = "spimux-test-only-psk"
  }
}
CONF
  fi
}

scenario() {
  local s=$1 auth ike esp frag=1280 dpd=0s mobike=yes
  case $s in
    psk-gcm-x25519) auth=psk ike=aes128gcm16-prfsha256-x25519 esp=aes128gcm16 dpd=2s mobike=no ;;
    psk-cbc-ecp256) auth=psk ike=aes256-sha256-prfsha256-ecp256 esp=aes128-sha256 ;;
    cert-ecdsa) auth=ecdsa ike=aes128gcm16-prfsha256-x25519 esp=aes128gcm16 frag=600 ;;
    cert-rsa) auth=rsa ike=aes128gcm16-prfsha256-x25519 esp=aes128gcm16 frag=1500 ;;
  esac
  local d=$RUN/$s dst=$OUT/$s
  echo "=== $s"
  mkdir -p "$d"/{initiator,responder}/{x509,x509ca,private}
  bash testbed/topology.sh up "$P"
  bash testbed/topology.sh kernel-nat "$P" on
  x "${P}h1" ip addr add 10.98.0.2/32 dev lo
  x "${P}srv" ip addr add 10.99.0.1/24 dev lo
  cat >"$d/strongswan.conf" <<CONF
# ike_capture.sh: testbed/strongswan/strongswan.conf plus level-4 IKE/CHD
# logging (the keys) and this scenario's IKE fragment size.
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  fragment_size = $frag
  filelog {
    stderr {
      default = 1
      ike = 4
      chd = 4
      enc = 1
      net = 1
    }
  }
}
CONF
  for role in initiator responder; do
    swanctl_conf $role $auth "$ike" "$esp" "$([ $role = initiator ] && echo $dpd || echo 0s)" $mobike >"$d/$role/swanctl.conf"
  done
  if [ "$auth" != psk ]; then
    cp "$PKI/$auth/h1.pem" "$d/initiator/x509/"; cp "$PKI/$auth/h1.key" "$d/initiator/private/"
    cp "$PKI/$auth/gw.pem" "$d/responder/x509/"; cp "$PKI/$auth/gw.key" "$d/responder/private/"
    cp "$PKI/$auth/ca.pem" "$d/initiator/x509ca/"; cp "$PKI/$auth/ca.pem" "$d/responder/x509ca/"
  fi
  ip netns exec "${P}srv" timeout 90 tcpdump -i "${P}s" -n -s 0 -U --immediate-mode -w "$d/capture.pcap" \
    'udp port 500 or udp port 4500 or ip proto 50' 2>"$d/tcpdump.log" &
  TCPDUMP=$!
  wait_for "$d/tcpdump.log" 'listening on'
  charon "${P}srv" responder "$d"
  charon "${P}h1" initiator "$d"
  local L=$d/initiator.log
  sw "$d" initiator --initiate --child cap --timeout 10 >"$d/initiate.out"
  x "${P}h1" ping -c 2 -i 0.2 -W 2 10.99.0.1 >/dev/null
  if [ "$s" = psk-gcm-x25519 ]; then
    sw "$d" initiator --rekey --child cap >/dev/null
    wait_for "$L" 'CHILD_SA cap\{2\} established'
    x "${P}h1" ping -c 2 -i 0.2 -W 2 10.99.0.1 >/dev/null
    sw "$d" initiator --rekey --ike cap >/dev/null
    # the new IKE SA is up once the old one is deleted (request [ D ], empty response)
    wait_for "$L" 'generating INFORMATIONAL request [0-9]+ \[ D \]'
    wait_count "$L" 'parsed INFORMATIONAL response [0-9]+ \[ \]' 1
    # liveness check: dpd_delay = 2s on the initiator and no traffic now
    wait_for "$L" 'generating INFORMATIONAL request [0-9]+ \[ \]' 80
    wait_count "$L" 'parsed INFORMATIONAL response [0-9]+ \[ \]' 2
    sw "$d" initiator --terminate --ike cap --timeout 5 >/dev/null
  fi
  sleep 1  # late retransmits or responses land before the capture stops
  stop_tcpdump
  stop_all
  bash testbed/topology.sh down "$P"
  rm -rf "$dst"; mkdir -p "$dst"
  cp "$d/capture.pcap" "$d/strongswan.conf" "$dst/"
  cp "$d/initiator/swanctl.conf" "$dst/initiator.swanctl.conf"
  cp "$d/responder/swanctl.conf" "$dst/responder.swanctl.conf"
  python3 testbed/ike_extract.py split "$dst/capture.pcap" "$dst"
  python3 testbed/ike_extract.py keys "$L" "$dst" --ike-proposal "$ike" --esp-proposal "$esp"
  python3 testbed/ike_extract.py verify "$dst" >"$dst/tshark-decrypted.txt"
  python3 testbed/ike_extract.py readme "$dst" "$s" "$auth" "$ike" "$esp" "$frag" "$dpd" >"$dst/README"
  grep -hE "authentication of|fragment|SKF|HASH_ALG|NAT" "$d/initiator.log" "$d/responder.log" | grep -v "=>" >"$d/summary" || true
  cat "$dst/messages.txt"
}

for s in "$@"; do scenario "$s"; done
ip netns list | grep -q "^$P" && { echo "namespaces of $P left over" >&2; exit 1; } || true
