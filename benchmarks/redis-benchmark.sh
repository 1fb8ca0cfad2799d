#!/usr/bin/env bash
# GET/SET throughput of the cache instance, without and with pipelining,
# measured inside the cache host (docker exec, loopback), as the app user.
# Works against Redis and Valkey hosts (redis_engine): it uses the benchmark
# tool of whichever server the host runs (redis-benchmark, valkey-benchmark).
#
#   benchmarks/redis-benchmark.sh [CONTAINER]      default: pystack-lab-cache1
#
# Environment:
#   REDIS_APP_PASSWORD       the app user's password, or
#   REDIS_APP_PASSWORD_FILE  a file holding it (default: the lab's .secrets/lab/redis_app)
#   REDIS_PORT               the cache instance's port (default 6379)
#   REDIS_USER               ACL user (default app)
#   REQUESTS                 requests per test (default 100000)
#   CLIENTS                  parallel connections (default 50)
#   PIPELINE                 requests per pipeline in the second round (default 16)
# Redis keeps only password hashes on the host, so the password comes from
# the controller.
set -euo pipefail
cd "$(dirname "$0")/.."

container=${1:-pystack-lab-cache1}
port=${REDIS_PORT:-6379}
user=${REDIS_USER:-app}
requests=${REQUESTS:-100000}
clients=${CLIENTS:-50}
pipeline=${PIPELINE:-16}

password=${REDIS_APP_PASSWORD:-}
if [ -z "$password" ]; then
  file=${REDIS_APP_PASSWORD_FILE:-.secrets/lab/redis_app}
  [ -r "$file" ] || { echo "redis-benchmark: set REDIS_APP_PASSWORD or REDIS_APP_PASSWORD_FILE (no $file)" >&2; exit 2; }
  password=$(sed -e 's/ salt=.*//' "$file" | head -n 1)
fi

docker inspect "$container" >/dev/null 2>&1 || { echo "redis-benchmark: no container $container" >&2; exit 2; }

# The engine: Valkey where the host runs valkey-server@ units, else Redis.
if docker exec "$container" systemctl list-units --plain --no-legend --state=active 'valkey-server@*' 2>/dev/null \
  | grep -q .; then
  server=valkey-server benchmark=valkey-benchmark engine=Valkey
else
  server=redis-server benchmark=redis-benchmark engine=Redis
fi

# One round: prints the CSV lines of the benchmark (test, rps, avg, min, p50, p95, p99, max).
round() {
  # The password travels in the environment of docker exec, not its arguments.
  docker exec -e REDISCLI_AUTH="$password" "$container" sh -c \
    'exec "$6" -h 127.0.0.1 -p "$1" --user "$2" -a "$REDISCLI_AUTH" -t get,set \
       -n "$3" -c "$4" -P "$5" -r 100000 -d 64 --csv' sh "$port" "$user" "$requests" "$clients" "$1" "$benchmark" \
    2>/dev/null | grep -E '^"(GET|SET)"'
}

version=$(docker exec "$container" "$server" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
echo "$benchmark on $container ($engine $version, port $port, user $user):" \
  "$requests requests per test, $clients clients, 64-byte values, loopback"
printf '%-5s %-9s %14s %9s %9s\n' test pipeline "requests/s" "p50 ms" "p99 ms"
for p in 1 "$pipeline"; do
  round "$p" | tr -d '"' | while IFS=, read -r test rps _avg _min p50 _p95 p99 _max; do
    printf '%-5s %-9s %14s %9s %9s\n' "$test" "$p" "$rps" "${p50:--}" "${p99:--}"
  done
done
