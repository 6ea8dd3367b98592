#!/usr/bin/env bash
# End-to-end benchmark of the durable path on the real (secured) stack:
# starts the stack when it is down (and stops it again at the end, unless
# BENCH_KEEP_STACK=1), builds herald and herald-load, migrates a fresh
# keyspace and creates topics under a fresh prefix, starts 1 enricher and
# 2 gateways (Redis routing) with logs under $STACK_DIR/bench/, runs the
# fixed load below and prints one table. Server CPU per delivered event is
# the utime+stime (/proc/<pid>/stat) of the three herald roles and the
# Kafka, Cassandra and Redis servers across each run (herald-load itself
# excluded), divided by the unique notifications delivered.
# Exits 1 when any run lost, doubled or failed to deliver a notification.
#
#	make bench-e2e        # or: bash scripts/bench/e2e.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
BENCH_DIR=$STACK_DIR/bench
GO=${GO:-go}
PORT_BASE=${BENCH_PORT_BASE:-19101}
mkdir -p "$BENCH_DIR"

ROLE_PIDS=()
STARTED_STACK=0
cleanup() {
	local pid
	for pid in "${ROLE_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${ROLE_PIDS[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ $STARTED_STACK == 1 && ${BENCH_KEEP_STACK:-0} != 1 ]]; then
		bash scripts/stack/stack.sh down || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s)
if [[ $(bash scripts/stack/stack.sh status 2>/dev/null | grep -Ec '^(kafka|cassandra|redis) +ready') != 3 ]]; then
	STARTED_STACK=1
fi
bash scripts/stack/stack.sh up
"$GO" build -o bin/herald ./cmd/herald
"$GO" build -o bin/herald-load ./cmd/herald-load

set -a
# shellcheck disable=SC1091
. "$STACK_DIR/herald.env"
set +a
TAG=$(date +%s)
export HERALD_STORE=cassandra
export HERALD_CASSANDRA_KEYSPACE=herald_bench_$TAG
export HERALD_TOPIC_PREFIX=bench$TAG.
export HERALD_TRANSACTIONAL_ID=bench$TAG-enricher
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export HERALD_API_KEYS=bench-key
export HERALD_LOG_LEVEL=${HERALD_LOG_LEVEL:-warn}

echo "bench-e2e: keyspace $HERALD_CASSANDRA_KEYSPACE, topic prefix $HERALD_TOPIC_PREFIX, logs in $BENCH_DIR"
bin/herald migrate >"$BENCH_DIR/migrate.log" 2>&1 || { cat "$BENCH_DIR/migrate.log"; exit 1; }
bin/herald topics >"$BENCH_DIR/topics.log" 2>&1 || { cat "$BENCH_DIR/topics.log"; exit 1; }

start_role() { # NAME PORT ROLE [ENV...]
	local name=$1 port=$2 role=$3
	shift 3
	env HERALD_ADDR=127.0.0.1:$port "$@" bin/herald "$role" >"$BENCH_DIR/$name.log" 2>&1 </dev/null &
	ROLE_PIDS+=("$!")
}
start_role enricher $((PORT_BASE)) enricher
start_role gateway-a $((PORT_BASE + 1)) gateway HERALD_GATEWAY_ID=bench-gwa
start_role gateway-b $((PORT_BASE + 2)) gateway HERALD_GATEWAY_ID=bench-gwb
for port in $PORT_BASE $((PORT_BASE + 1)) $((PORT_BASE + 2)); do
	for i in $(seq 1 120); do
		curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
		for pid in "${ROLE_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null || { echo "bench-e2e: a role exited; see $BENCH_DIR/*.log" >&2; tail -n 20 "$BENCH_DIR"/*.log >&2; exit 1; }
		done
		[[ $i == 120 ]] && { echo "bench-e2e: 127.0.0.1:$port not ready after 60 s" >&2; exit 1; }
		sleep 0.5
	done
done
GATEWAYS=ws://127.0.0.1:$((PORT_BASE + 1)),ws://127.0.0.1:$((PORT_BASE + 2))

SERVER_PIDS=()
for name in kafka cassandra redis; do
	SERVER_PIDS+=("$(<"$STACK_DIR/run/$name.pid")")
done
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of the roles and servers, in clock ticks
	local pid total=0 stat rest
	for pid in "${ROLE_PIDS[@]}" "${SERVER_PIDS[@]}"; do
		stat=$(<"/proc/$pid/stat") || continue
		rest=${stat##*) } # fields from 3 on (the command name may hold spaces)
		read -r -a f <<<"$rest"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

ROWS=()
FAILED=0
run() { # LABEL USERS EVENTS RATE
	local label=$1 users=$2 events=$3 rate=$4 before after line rc cpu load
	echo "bench-e2e: $label: $events events over $users users at ${rate}/s (0: as fast as possible)"
	before=$(cpu_ticks)
	rc=0
	timeout 150 bin/herald-load -topic "${HERALD_TOPIC_PREFIX}events" -gateways "$GATEWAYS" \
		-users "$users" -events "$events" -rate "$rate" -drain 30s -timeout 140s \
		-run "bench$TAG-$label" -label "$label" 2>&1 | tee "$BENCH_DIR/load-$label.log" || rc=$?
	after=$(cpu_ticks)
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	line=$(grep '^RESULT ' "$BENCH_DIR/load-$label.log" || true)
	if [[ -z $line ]]; then
		ROWS+=("$(printf '| %s | failed (exit %s, see %s) | | | | | | |' "$label" "$rc" "$BENCH_DIR/load-$label.log")")
		FAILED=1
		return
	fi
	[[ $rc == 0 ]] || FAILED=1
	local delivered
	delivered=$(field delivered "$line")
	cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$delivered" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1000 / n; else print "-" }')
	ROWS+=("$(printf '| %s | %s | %s | %s / %s / %s | %s | %s | %s | %s |' "$label" \
		"$(field rate_in "$line")" "$(field delivered_per_s "$line")" \
		"$(field p50_ms "$line")" "$(field p90_ms "$line")" "$(field p99_ms "$line")" \
		"$(field missing "$line")" "$(field duplicate "$line")" "$cpu" "$load")")
}

run burst-20k-200u 200 20000 0
run steady-500x20s-200u 200 10000 500
run steady-2000x15s-1000u 1000 30000 2000

echo
echo "bench-e2e: $(nproc) CPUs, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(( $(date +%s) - T0 )) s in all"
echo "| run | rate in (events/s) | delivered/s | p50 / p90 / p99 (ms) | missing | duplicate | server CPU per delivered (ms) | load avg 1/5/15 after |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit "$FAILED"
