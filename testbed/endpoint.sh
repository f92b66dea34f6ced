# Shell helpers for the spimux endpoint daemons, sourced by testbed/demo.sh
# and bench/lib.sh (run from the repository root).

# wait_child_sa NETNS PORT: waits (at most 5 s) until the endpoint in network
# namespace NETNS, metrics on 127.0.0.1:PORT, has its IKE CHILD_SA installed.
wait_child_sa() {
  for _ in $(seq 100); do
    ip netns exec "$1" curl -sf "http://127.0.0.1:$2/metrics" |
      grep -q '^spimux_ike_child_sas{state="installed"} [1-9]' && return 0
    sleep 0.05
  done
  echo "no CHILD_SA in $1" >&2
  return 1
}
