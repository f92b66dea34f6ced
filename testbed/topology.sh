#!/usr/bin/env bash
# spimux namespace testbed.
#
#   h1 10.6.1.2 ─┐
#                ├─ lan (bridge) ─ rt [spimux: inside 10.6.1.1 | outside 203.0.113.10] ─ wan ─ srv 198.51.100.69
#   h2 10.6.1.3 ─┘                                          203.0.113.1 / 198.51.100.1
#
# Usage: topology.sh up PREFIX | down PREFIX | kernel-nat PREFIX on|off | names PREFIX
# PREFIX (2..7 chars, [a-z0-9]) starts every namespace and link name, so a run
# removes exactly its own. The router namespace gets no kernel IPs and
# ip_forward=0: only spimux answers and forwards (unless kernel-nat on).
#
# OFFLOADS=on (default) | off sets every testbed link's offloads deliberately:
#   on   tx checksum, SG, TSO, GSO and UDP segmentation on, GRO off — what a
#        virtual link or a modern NIC does: frames reach the router with partial
#        checksums and as GSO super-frames of up to 64 KiB;
#   off  all of them off: every hop sends finished, MTU-sized packets.
# The router's own two interfaces are left to spimux (dataplane.disable_offloads).
set -euo pipefail

cmd=${1:?usage: topology.sh up|down|kernel-nat|names PREFIX}
P=${2:?prefix required}
[[ $P =~ ^[a-z0-9]{2,7}$ ]] || { echo "bad prefix $P" >&2; exit 2; }

H1=${P}h1 H2=${P}h2 LAN=${P}lan RT=${P}rt WAN=${P}wan SRV=${P}srv
# Router interface names (what spimux is told to use).
RT_IN=${P}ri RT_OUT=${P}ro

x() { ip netns exec "$@"; }

quiet_ns() {  # no IPv6 chatter, no martian surprises
  x "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  x "$1" ip link set lo up
}

OFFLOADS=${OFFLOADS:-on}
[[ $OFFLOADS =~ ^(on|off)$ ]] || { echo "OFFLOADS must be on or off" >&2; exit 2; }
offloads() {  # NS DEV: apply $OFFLOADS; receivers always verify checksums in software (rx off)
  if [ "$OFFLOADS" = on ]; then
    x "$1" ethtool -K "$2" rx off gro off tx on sg on tso on gso on tx-udp-segmentation on >/dev/null
  else
    x "$1" ethtool -K "$2" tx off rx off gro off gso off tso off sg off >/dev/null
  fi
}

up() {
  for n in $H1 $H2 $LAN $RT $WAN $SRV; do ip netns add "$n"; quiet_ns "$n"; done
  x "$LAN" ip link add ${P}br type bridge
  x "$LAN" ip link set ${P}br up
  # A LAN switch, not a firewall: no iptables/arptables calls on bridged frames (br_netfilter).
  x "$LAN" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
  # inside hosts
  ip link add ${P}a netns "$H1" type veth peer name ${P}a1 netns "$LAN"
  ip link add ${P}b netns "$H2" type veth peer name ${P}b1 netns "$LAN"
  ip link add "$RT_IN" netns "$RT" type veth peer name ${P}rl netns "$LAN"
  for l in ${P}a1 ${P}b1 ${P}rl; do x "$LAN" ip link set "$l" master ${P}br up; offloads "$LAN" "$l"; done
  x "$H1" ip addr add 10.6.1.2/24 dev ${P}a; x "$H1" ip link set ${P}a up; x "$H1" ip route add default via 10.6.1.1
  x "$H2" ip addr add 10.6.1.3/24 dev ${P}b; x "$H2" ip link set ${P}b up; x "$H2" ip route add default via 10.6.1.1
  offloads "$H1" ${P}a; offloads "$H2" ${P}b
  # router: links up, no addresses, no forwarding
  ip link add "$RT_OUT" netns "$RT" type veth peer name ${P}wr netns "$WAN"
  x "$RT" ip link set "$RT_IN" up
  x "$RT" ip link set "$RT_OUT" up
  x "$RT" sysctl -qw net.ipv4.ip_forward=0
  # WAN router
  x "$WAN" ip addr add 203.0.113.1/24 dev ${P}wr; x "$WAN" ip link set ${P}wr up; offloads "$WAN" ${P}wr
  ip link add ${P}ws netns "$WAN" type veth peer name ${P}s netns "$SRV"
  x "$WAN" ip addr add 198.51.100.1/24 dev ${P}ws; x "$WAN" ip link set ${P}ws up; offloads "$WAN" ${P}ws
  x "$WAN" sysctl -qw net.ipv4.ip_forward=1
  # server
  x "$SRV" ip addr add 198.51.100.69/24 dev ${P}s; x "$SRV" ip link set ${P}s up; offloads "$SRV" ${P}s
  x "$SRV" ip route add default via 198.51.100.1
}

down() {
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${P}(h1|h2|lan|rt|wan|srv)$" || true); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
}

kernel_nat() {
  case ${1:?on|off} in
    on)
      x "$RT" ip addr add 10.6.1.1/24 dev "$RT_IN"
      x "$RT" ip addr add 203.0.113.10/24 dev "$RT_OUT"
      x "$RT" ip route add default via 203.0.113.1
      x "$RT" sysctl -qw net.ipv4.ip_forward=1
      x "$RT" nft -f - <<NFT
table ip ${P}nat {
  chain post { type nat hook postrouting priority srcnat; oifname "$RT_OUT" masquerade; }
}
NFT
      ;;
    off)
      x "$RT" nft delete table ip ${P}nat 2>/dev/null || true
      x "$RT" sysctl -qw net.ipv4.ip_forward=0
      x "$RT" ip route flush default 2>/dev/null || true
      x "$RT" ip addr flush dev "$RT_IN"
      x "$RT" ip addr flush dev "$RT_OUT"
      x "$RT" conntrack -F 2>/dev/null || true
      ;;
  esac
}

case $cmd in
  up) down; trap 'down' ERR; up; trap - ERR ;;
  down) down ;;
  kernel-nat) kernel_nat "${3:-}" ;;
  names) echo "H1=$H1 H2=$H2 LAN=$LAN RT=$RT WAN=$WAN SRV=$SRV RT_IN=$RT_IN RT_OUT=$RT_OUT" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
