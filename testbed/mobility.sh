#!/usr/bin/env bash
# spimux mobility testbed: a mobile host with two access networks.
#
#            direct: 203.0.113.10/26 ── md ─┐
#   mob ─┤                                  ├─ core (kernel router) ── gw 198.51.100.69 (spimux responder)
#            nat:    10.77.0.2/24 ── nat [nft masquerade random] 203.0.113.66 ─┘
#
# Usage: mobility.sh up PREFIX | down PREFIX | move PREFIX direct|nat | block-esp PREFIX on|off
# PREFIX (2..7 chars, [a-z0-9]) starts every namespace and link name, so a run
# removes exactly its own. The mobile host starts with no outer address;
# `move` removes the address from one interface and adds it on the other.
set -euo pipefail

cmd=${1:?usage: mobility.sh up|down|move|block-esp PREFIX}
P=${2:?prefix required}
[[ $P =~ ^[a-z0-9]{2,7}$ ]] || { echo "bad prefix $P" >&2; exit 2; }

MOB=${P}mob NAT=${P}nat CORE=${P}core GW=${P}gw

x() { ip netns exec "$@"; }

quiet_ns() {
  x "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  x "$1" ip link set lo up
}

offloads_off() {  # deterministic checksums on every hop
  x "$1" ethtool -K "$2" tx off rx off gro off gso off tso off sg off >/dev/null 2>&1 || true
}

link() {  # link NS_A IF_A NS_B IF_B
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  x "$1" ip link set "$2" up; offloads_off "$1" "$2"
  x "$3" ip link set "$4" up; offloads_off "$3" "$4"
}

up() {
  for n in $MOB $NAT $CORE $GW; do ip netns add "$n"; quiet_ns "$n"; done
  link "$MOB" ${P}md "$CORE" ${P}cd      # direct access network
  link "$MOB" ${P}mn "$NAT" ${P}ni       # access network behind the NAT
  link "$NAT" ${P}no "$CORE" ${P}cn      # NAT's public side
  link "$GW" ${P}g "$CORE" ${P}cg        # gateway
  x "$CORE" ip addr add 203.0.113.1/26 dev ${P}cd
  x "$CORE" ip addr add 203.0.113.65/26 dev ${P}cn
  x "$CORE" ip addr add 198.51.100.1/24 dev ${P}cg
  x "$CORE" sysctl -qw net.ipv4.ip_forward=1
  x "$GW" ip addr add 198.51.100.69/24 dev ${P}g
  x "$GW" ip route add default via 198.51.100.1
  x "$NAT" ip addr add 10.77.0.1/24 dev ${P}ni
  x "$NAT" ip addr add 203.0.113.66/26 dev ${P}no
  x "$NAT" ip route add default via 203.0.113.65
  x "$NAT" sysctl -qw net.ipv4.ip_forward=1
  # A NAPT nobody here wrote: Linux masquerade with randomised source ports.
  x "$NAT" nft -f - <<EOF
table ip ${P}nat {
  chain post { type nat hook postrouting priority srcnat; oifname "${P}no" masquerade random; }
}
EOF
}

down() {
  for n in $MOB $NAT $CORE $GW; do ip netns del "$n" 2>/dev/null || true; done
}

move() {  # one `ip -batch`: the old address goes, the new address and default route come
  case "$1" in
    direct) old="addr del 10.77.0.2/24 dev ${P}mn"; new="addr add 203.0.113.10/26 dev ${P}md"; gw=203.0.113.1 ;;
    nat)    old="addr del 203.0.113.10/26 dev ${P}md"; new="addr add 10.77.0.2/24 dev ${P}mn"; gw=10.77.0.1 ;;
    *) echo "move direct|nat" >&2; exit 2 ;;
  esac
  # The first move has no old address; `-force` carries on past that error.
  printf '%s\n%s\nroute replace default via %s\n' "$old" "$new" "$gw" | x "$MOB" ip -force -batch - 2>/dev/null || true
  x "$MOB" ip route get 198.51.100.69 >/dev/null
}

block_esp() {  # a firewall on the direct network that passes UDP 4500 but drops protocol 50
  case "$1" in
    on) x "$CORE" nft -f - <<EOF
table inet ${P}fw {
  chain filter_esp { type filter hook forward priority filter;
    iifname "${P}cd" meta l4proto esp counter drop
    oifname "${P}cd" meta l4proto esp counter drop
  }
}
EOF
    ;;
    off) x "$CORE" nft delete table inet ${P}fw 2>/dev/null || true ;;
    *) echo "block-esp on|off" >&2; exit 2 ;;
  esac
}

case "$cmd" in
  up) down; up ;;
  down) down ;;
  move) move "${3:?direct|nat}" ;;
  block-esp) block_esp "${3:?on|off}" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
