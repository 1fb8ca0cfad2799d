#!/usr/bin/env bash
# The balancer's overhead: the same wrk load (same endpoint, same total
# connections, -d at most 10 s) through the balancer and directly to the app
# nodes, printed side by side with the through/direct ratio. wrk runs inside
# the lb host's container: "through" is its own loopback over HTTPS (TLS
# termination included, as clients get it), "direct" is the app nodes' port
# over the container network, one wrk per node with an equal share of the
# connections at the same time (req/s summed, p50/p99 the worse node's).
#
#   benchmarks/edge.sh [LB_CONTAINER] (default pystack-lab-lb1)
#   APPS="pystack-edge-app1 pystack-edge-app2" CONNECTIONS=16 benchmarks/edge.sh pystack-edge-lb-haproxy
#
# Prints numbers only; it asserts nothing.
set -euo pipefail

LB=${1:-pystack-lab-lb1}
APPS=${APPS:-app1 app2}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
ENDPOINTS=${ENDPOINTS:-/runtime /healthz}
PORT=${PORT:-8000}
read -r -a apps <<<"$APPS"

[ "$DURATION" -le 10 ] || { echo "edge.sh: DURATION is at most 10 seconds per run" >&2; exit 2; }
docker inspect "$LB" >/dev/null 2>&1 || { echo "edge.sh: no container $LB (make lab first?)" >&2; exit 1; }
in_lb() { docker exec "$LB" bash -c "$1"; }
in_lb 'command -v wrk >/dev/null || (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null))'
engine=$(in_lb 'systemctl is-active --quiet haproxy && echo haproxy || echo nginx')
threads=$(in_lb nproc)

# wrk --latency prints "50%  1.23ms"; normalise to milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.2f", v}'; }
# One wrk run: "req/s p50 p99 errors".
wrk_run() {
  local url=$1 conns=$2 out
  out=$(in_lb "wrk -t$(( conns < threads ? conns : threads )) -c$conns -d${DURATION}s --latency '$url'")
  printf '%s %s %s %s\n' \
    "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)" \
    "$(awk '/Non-2xx|Socket errors/ {n++} END {print n ? "yes" : "no"}' <<<"$out")"
}

printf 'balancer: %s on %s; %s connections, %ss per run\n' "${engine:-?}" "$LB" "$CONNECTIONS" "$DURATION"
printf '%-10s %12s %9s %9s %13s %9s %9s %8s %s\n' \
  endpoint thru_req/s thru_p50 thru_p99 direct_req/s dir_p50 dir_p99 ratio 'errors(thru/direct)'
for endpoint in $ENDPOINTS; do
  # Warm up both paths (keep-alive pools, JIT, caches).
  in_lb "wrk -t1 -c2 -d2s 'https://127.0.0.1:443$endpoint' >/dev/null"
  read -r t_rps t_p50 t_p99 t_err < <(wrk_run "https://127.0.0.1:443$endpoint" "$CONNECTIONS")
  share=$(( CONNECTIONS / ${#apps[@]} ))
  [ "$share" -ge 1 ] || share=1
  tmp=$(mktemp -d)
  for app in "${apps[@]}"; do
    wrk_run "http://$app:$PORT$endpoint" "$share" >"$tmp/$app" &
  done
  wait
  read -r d_rps d_p50 d_p99 d_err < <(cat "$tmp"/* | awk '
    {rps += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3; if ($4 == "yes") err = "yes"}
    END {printf "%.2f %.2f %.2f %s\n", rps, p50, p99, err ? err : "no"}')
  rm -rf "$tmp"
  ratio=$(awk -v t="$t_rps" -v d="$d_rps" 'BEGIN {printf "%.2f", (d > 0 ? t / d : 0)}')
  errors="$t_err/$d_err"
  printf '%-10s %12s %9s %9s %13s %9s %9s %8s %s\n' \
    "$endpoint" "$t_rps" "$t_p50" "$t_p99" "$d_rps" "$d_p50" "$d_p99" "$ratio" "$errors"
done
