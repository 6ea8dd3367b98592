#!/usr/bin/env bash
# Reconnect storm against a real gateway process (docs/BENCHMARKS.md,
# "Reconnect storm"): builds herald from this checkout, starts `herald dev`
# (fresh temp data dir, free loopback port, embedded Kafka on any free port,
# default WebSocket admission settings) as the surviving gateway, and runs
# BenchmarkReconnectStorm against it with STORM_CONNS clients (15,000 by
# default) in the benchmark process: the benchmark seeds every user with 3
# notifications through POST /v1/events, waits until all are stored, then
# every client connects at once with after=1 and backs off with jitter until
# it is resynced. Prints the benchmark's figures, herald dev's peak RSS and
# the load average; kills herald dev (by pid) and removes the temp dir at
# exit. Loopback only; bounded: the storm by STORM_TIMEOUT (5m), the whole
# benchmark by go test's -timeout 8m.
#
#	make bench-storm        # or: bash scripts/bench/storm.sh
#
# Settings (environment):
#	STORM_CONNS           clients; 15000
#	STORM_HTTP_MAX_CONNS  herald dev's --http-max-conns; 16000 (the default
#	                      10,000 cannot hold 15,000 sockets: the rest would
#	                      get 503 at the connection cap forever)
#	STORM_TIMEOUT, STORM_SOURCES, STORM_SEED_TIMEOUT: see BenchmarkReconnectStorm
# herald dev has no --ws-* settings: its gateway always runs the defaults
# (500 upgrades/s, bursts of 1,000, 256 replay slots, 10 s replay wait).
set -euo pipefail

cd "$(dirname "$0")/../.."
GO=${GO:-go}
CONNS=${STORM_CONNS:-15000}
MAX_CONNS=${STORM_HTTP_MAX_CONNS:-16000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/herald-storm.XXXXXX")
PID=

cleanup() {
	if [[ -n $PID ]]; then
		kill -TERM "$PID" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# Each client is one socket in the benchmark process and one in herald dev.
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < CONNS + 1000 )); then
	echo "bench-storm: ulimit -n is $(ulimit -n) (hard limit), too few for $CONNS clients" >&2
	exit 1
fi

echo "bench-storm: building herald and the delivery benchmark"
$GO build -o "$TMP/herald" ./cmd/herald
$GO test -c -o "$TMP/delivery.test" ./delivery/

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
"$TMP/herald" dev --data-dir "$TMP/data" --addr "127.0.0.1:$PORT" --kafka-port 0 \
	--http-max-conns "$MAX_CONNS" --log-level warn >"$TMP/herald.log" 2>&1 &
PID=$!
for i in $(seq 1 120); do
	if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$PID" 2>/dev/null || (( i == 120 )); then
		echo "bench-storm: herald dev did not become ready; its log:" >&2
		cat "$TMP/herald.log" >&2
		exit 1
	fi
	sleep 0.5
done
echo "bench-storm: herald dev pid $PID on $BASE (--http-max-conns $MAX_CONNS), $CONNS clients; load average $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
(
	cd delivery
	STORM_GATEWAYS=$BASE STORM_GATEWAY_PIDS=$PID STORM_DEV_DIR=$TMP/data STORM_CONNS=$CONNS \
		"$TMP/delivery.test" -test.run '^$' -test.bench 'ReconnectStorm$' -test.benchtime 1x -test.timeout 8m
) || status=$?
echo "bench-storm: load average after $(cut -d' ' -f1-3 /proc/loadavg); herald dev $(grep -E '^(VmHWM|VmRSS)' "/proc/$PID/status" 2>/dev/null | tr -s ' \t\n' ' ')"
if (( status != 0 )); then
	echo "bench-storm: the benchmark failed ($status); herald dev's log (last 40 lines):" >&2
	tail -n 40 "$TMP/herald.log" >&2
fi
exit "$status"
