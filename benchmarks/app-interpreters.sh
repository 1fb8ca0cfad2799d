#!/usr/bin/env bash
# Load each app node directly, one after the other, on the same endpoints, and
# print req/s, p50, p99 and the RSS per worker side by side. Nodes are lab
# containers (default: the lab's app1 and app2, i.e. CPython and the Pyston
# canary); the load generator (wrk) runs inside each node against loopback, so
# no traffic leaves the machine.
#
#   benchmarks/app-interpreters.sh [CONTAINER...]
#   DURATION=15 WARMUP=10 CONNECTIONS=8 ENDPOINTS="/page /api/items?limit=50" benchmarks/app-interpreters.sh
#
# Prints numbers only; what counts as fast enough is for the reader.
set -euo pipefail

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-10}
CONNECTIONS=${CONNECTIONS:-8}
ENDPOINTS=${ENDPOINTS:-/page /api/items?limit=50 /runtime}
PORT=${PORT:-8000}
UNIT=${UNIT:-pystack-app}
nodes=("$@")
[ ${#nodes[@]} -gt 0 ] || nodes=(pystack-lab-app1 pystack-lab-app2)

in_node() { docker exec "$1" bash -c "$2"; }

for node in "${nodes[@]}"; do
  docker inspect "$node" >/dev/null 2>&1 || { echo "no container $node (make lab first?)" >&2; exit 1; }
  in_node "$node" 'command -v wrk >/dev/null || (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null))'
done

# wrk --latency prints "50%  1.23ms"; normalise to milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.2f", v}'; }

printf '%-24s %-8s %-8s %-5s %-22s %10s %9s %9s %8s %7s\n' node interp server jit endpoint req/s p50_ms p99_ms rss_MB errors
for node in "${nodes[@]}"; do
  runtime=$(in_node "$node" "curl -s -m 10 http://127.0.0.1:$PORT/runtime")
  interp=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["interpreter"])' "$runtime")
  server=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["server"])' "$runtime")
  jit=$(python3 -c 'import json,sys; print(str(json.loads(sys.argv[1])["jit"]).lower())' "$runtime")
  in_node "$node" "curl -s -m 30 -X POST 'http://127.0.0.1:$PORT/api/seed?n=200' >/dev/null" || true
  for endpoint in $ENDPOINTS; do
    url="http://127.0.0.1:$PORT$endpoint"
    # Warm-up: JIT interpreters compile the hot paths in every worker first.
    in_node "$node" "wrk -t2 -c$CONNECTIONS -d${WARMUP}s '$url' >/dev/null"
    out=$(in_node "$node" "wrk -t2 -c$CONNECTIONS -d${DURATION}s --latency '$url'")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)
    errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i} END {print n + 0}' <<<"$out")
    rss=$(in_node "$node" "main=\$(systemctl show -p MainPID --value $UNIT); ps -o rss= --ppid \$main | awk '{s+=\$1; n++} END {if (n) printf \"%.0f\", s/n/1024; else print 0}'")
    printf '%-24s %-8s %-8s %-5s %-22s %10s %9s %9s %8s %7s\n' "$node" "$interp" "$server" "$jit" "$endpoint" "$rps" "$p50" "$p99" "$rss" "$errors"
  done
done
