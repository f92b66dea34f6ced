#!/usr/bin/env bash
# Installs the system packages the demo and the test suite need (Debian 12).
# Idempotent: does nothing when every tool is already present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have nft || need+=(nftables)
have iperf3 || need+=(iperf3)
have tcpdump || need+=(tcpdump)
have tshark || need+=(tshark)
have trafgen || need+=(netsniff-ng)
have socat || need+=(socat)
have curl || need+=(curl)
have ethtool || need+=(ethtool)
have ping || need+=(iputils-ping)
have traceroute || need+=(traceroute)
/usr/bin/python3 -c 'import scapy' 2>/dev/null || need+=(python3-scapy)
# x25519 and AES-GCM for the hostile IKE peer (testbed/ike_attack.py).
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
# strongSwan 5.9 (charon with kernel-libipsec, swanctl): the IKE interop peer.
[ -x /usr/lib/ipsec/charon ] || need+=(strongswan)
have swanctl || need+=(strongswan-swanctl)
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || need+=(libcharon-extra-plugins)
# pki (testbed/ike_pki.sh) and openssl: certificates made and converted by the IKE interop tests.
have pki || need+=(strongswan-pki)
have openssl || need+=(openssl)
# promtool and prometheus: the alert rules' checks and unit tests, and the real Prometheus
# of tests/e2e_prometheus.rs (config/prometheus/).
have promtool || need+=(prometheus)
# setpriv (util-linux): the unprivileged router test; systemd-analyze: the unit files' test.
have setpriv || need+=(util-linux)
have systemd-analyze || need+=(systemd)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then echo "install-deps: need root to install: ${need[*]}" >&2; exit 1; fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Prometheus-style checks and e2e tests use cargo-nextest when present; cargo test otherwise.
