#!/usr/bin/env bash
# pgbench -S (read-only) against PostgreSQL directly and through pgbouncer, at
# several client counts, with the simple query protocol and with prepared
# statements (-M prepared: protocol-level, which pgbouncer 1.21+ keeps across
# transactions when max_prepared_statements > 0), and with a reconnect per
# transaction (-C), run inside the db host's container over loopback. Prints
# TPS and the pooler/direct ratio per row; it asserts nothing.
#
#   benchmarks/pgbench.sh [container] (default pystack-lab-db1)
#   DURATION=10 SCALE=5 CLIENTS="8 64 256" DATABASE=app benchmarks/pgbench.sh pystack-data-db1
#
# pgbouncer pools only the databases it lists, so the benchmark works inside
# one of them (DATABASE), with a login role and a schema of its own, made at
# the start and dropped at the end. Its password is random and never stored.
set -euo pipefail

CONTAINER=${1:-pystack-lab-db1}
DATABASE=${DATABASE:-app}
DURATION=${DURATION:-10}
SCALE=${SCALE:-5}
CLIENTS=${CLIENTS:-8 64 256}
RECONNECT_CLIENTS=${RECONNECT_CLIENTS:-8}
DIRECT_PORT=${DIRECT_PORT:-5432}
POOLER_PORT=${POOLER_PORT:-6432}
ROLE=pystack_bench
THREADS=$(docker exec "$CONTAINER" nproc)
PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

[ "$DURATION" -le 10 ] || { echo "pgbench.sh: DURATION is at most 10 seconds per run" >&2; exit 2; }

as_postgres() {
  docker exec -i -e PGOPTIONS=--client-min-messages=warning "$CONTAINER" \
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE" "$@"
}

as_bench() {
  docker exec -e PGPASSWORD="$PASSWORD" "$CONTAINER" "$@"
}

# Close the role's server connections (pgbouncer keeps idle ones for
# server_idle_timeout): they would take slots from the next direct run.
drain() {
  as_postgres -At >/dev/null <<SQL
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$ROLE' AND pid <> pg_backend_pid();
SQL
}

cleanup() {
  drain 2>/dev/null || true
  as_postgres >/dev/null 2>&1 <<SQL || true
DROP SCHEMA IF EXISTS $ROLE CASCADE;
DROP ROLE IF EXISTS $ROLE;
SQL
}
trap cleanup EXIT

echo "pgbench on $CONTAINER ($THREADS cores), database $DATABASE, scale $SCALE, ${DURATION}s per run"
cleanup
as_postgres >/dev/null <<SQL
CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
CREATE SCHEMA $ROLE AUTHORIZATION $ROLE;
ALTER ROLE $ROLE IN DATABASE $DATABASE SET search_path = $ROLE;
SQL
as_bench pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$DIRECT_PORT" -U "$ROLE" "$DATABASE" >/dev/null 2>&1

max_connections=$(as_postgres -At -c 'SHOW max_connections')
pool_size=$(docker exec "$CONTAINER" runuser -u postgres -- psql -X -At -F '|' -h /var/run/postgresql \
  -p "$POOLER_PORT" -d pgbouncer -c 'SHOW CONFIG' | awk -F'|' '$1 == "default_pool_size" {print $2}')
echo "max_connections $max_connections, pgbouncer default_pool_size ${pool_size:-?}"

# tps of one run; "refused" when the server turns clients away, "failed" when
# the run fails otherwise (e.g. -M prepared through a pgbouncer that does not
# keep prepared statements: "prepared statement ... does not exist").
tps() {
  local port=$1 clients=$2
  shift 2
  local out
  if out=$(as_bench pgbench -n -T "$DURATION" -c "$clients" -j "$THREADS" "$@" \
      -h 127.0.0.1 -p "$port" -U "$ROLE" "$DATABASE" 2>&1) && grep -q '^tps = ' <<<"$out"; then
    grep -m1 '^tps = ' <<<"$out" | awk '{printf "%.0f", $3}'
  elif grep -q 'too many clients\|remaining connection slots' <<<"$out"; then
    echo refused
  else
    echo failed
  fi
}

ratio() {
  if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $1 -gt 0 ]]; then
    awk -v d="$1" -v p="$2" 'BEGIN {printf "%.2f", p / d}'
  else
    echo "-"
  fi
}

prepared=$(docker exec "$CONTAINER" runuser -u postgres -- psql -X -At -F '|' -h /var/run/postgresql \
  -p "$POOLER_PORT" -d pgbouncer -c 'SHOW CONFIG' | awk -F'|' '$1 == "max_prepared_statements" {print $2}')
echo "pgbouncer max_prepared_statements ${prepared:-(not supported)}"

printf '\n%-8s %-16s %12s %12s %14s\n' clients mode direct_tps pooled_tps pooled/direct
# row CLIENTS PGBENCH-OPTIONS...: one direct and one pooled run.
row() {
  local clients=$1
  shift
  local direct pooled
  direct=$(tps "$DIRECT_PORT" "$clients" "$@")
  pooled=$(tps "$POOLER_PORT" "$clients" "$@")
  drain
  printf '%-8s %-16s %12s %12s %14s\n' "$clients" "$*" "$direct" "$pooled" "$(ratio "$direct" "$pooled")"
}
for clients in $CLIENTS; do
  row "$clients" -S
  row "$clients" -S -M prepared
done
row "$RECONNECT_CLIENTS" -S -C
echo "(refused: more clients than PostgreSQL's max_connections allows; the pooler queues them."
echo " failed: the run broke off, e.g. -M prepared through a pgbouncer that keeps no prepared statements)"
