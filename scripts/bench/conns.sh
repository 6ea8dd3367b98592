#!/usr/bin/env bash
# Connections on one machine (docs/BENCHMARKS.md, "Connections on one
# machine"), two measurements with fixed parameters and one table:
#
#  1. Idle memory: BenchmarkIdleRSS (delivery/idle_rss_test.go) with
#     CONNS_IDLE idle connections against a gateway child process, for the
#     goroutine read mode (the old gateway), the epoll mode, and the epoll
#     mode with a 257-byte read buffer and GOMEMLIMIT=64MiB; RSS growth per
#     connection.
#  2. Capacity on the real (secured) stack: a fresh keyspace and topic
#     prefix, the api role, one enricher (HERALD_FANOUT_RATE=CONNS_FANOUT_RATE)
#     and CONNS_GATEWAYS gateways in epoll mode (--http-max-conns 19,000
#     each: a process may hold 20,000 files here); CONNS_TOTAL users made
#     members of one topic through the API, then connected, one WebSocket
#     each, by herald-conns processes of at most 15,000 connections each,
#     spread over source addresses 127.1.0.1, 127.1.0.2, … (1,000 per
#     address); once every gateway has loaded its users' topics, one
#     broadcast to the topic through POST /v1/events (the audience path:
#     at or above --fanout-threshold it goes to the topic's feed and every
#     connected member is caught up at once). Reports the connections held,
#     the gateways' total RSS before and after, and the broadcast's p50,
#     p99 and last arrival as an inbox notification (produce→WebSocket,
#     from the event's created_at), with missing, duplicate and dropped
#     counts; with CONNS_BROADCASTS=live (the clients connect with
#     broadcasts=live) also the same for its live "broadcast" frame
#     (docs/ARCHITECTURE.md, "Live broadcasts"), with how many connections
#     got one.
#
# Starts the stack when it is down (and stops it at the end, unless
# BENCH_KEEP_STACK=1). Logs under $STACK_DIR/bench/conns-*/. Loopback only;
# every step is bounded in time. Exits 1 when a connection failed, was
# dropped, missed or doubled the broadcast's inbox notification, or got
# its broadcast frame twice (a missing broadcast frame is counted, not a
# failure: the frame is best effort).
#
#	make bench-conns        # or: bash scripts/bench/conns.sh
#
# Settings (environment):
#	CONNS_TOTAL        connections (and members) in the capacity run; 100000
#	CONNS_GATEWAYS     gateway processes; 6
#	CONNS_PER_CLIENT   connections per herald-conns process; 15000
#	CONNS_IDLE         connections of the idle-memory runs; 15000
#	CONNS_SKIP_IDLE=1  skip part 1; CONNS_SKIP_CAPACITY=1 skip part 2
#	CONNS_FANOUT_RATE  the enricher's HERALD_FANOUT_RATE; 50000
#	CONNS_DIAL_RATE    connections opened per second by each client; 400
#	CONNS_PORT_BASE    first of the roles' ports; 19301
#	CONNS_SETTLE_IDLE  post the broadcast once the CPU is this % idle in
#	                   three 5 s readings in a row; 50
#	CONNS_SETTLE_MAX   or after this many seconds of waiting for it; 300
#	CONNS_BROADCASTS   the clients' broadcasts= (herald-conns -broadcasts):
#	                   live (also measure the broadcast frame) or inbox
#	                   (notifications only, as before); live
#	CONNS_PROFILE=1    gateway 1 and the enricher serve net/http/pprof on
#	                   an admin address (CONNS_PORT_BASE+100, +101), and a
#	                   CPU profile of each over CONNS_PROFILE_S seconds (10)
#	                   from just before the post is written to the run's
#	                   directory (profile-*.pb.gz, profile-*.top.txt)
#	Only CONNS_TOTAL and CONNS_GATEWAYS at their defaults give the figures
#	of docs/BENCHMARKS.md.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
GO=${GO:-go}
TOTAL=${CONNS_TOTAL:-100000}
NGW=${CONNS_GATEWAYS:-6}
PER_CLIENT=${CONNS_PER_CLIENT:-15000}
IDLE=${CONNS_IDLE:-15000}
FANOUT_RATE=${CONNS_FANOUT_RATE:-50000}
DIAL_RATE=${CONNS_DIAL_RATE:-400}
PORT_BASE=${CONNS_PORT_BASE:-19301}
BROADCASTS=${CONNS_BROADCASTS:-live}
SETTLE_IDLE=${CONNS_SETTLE_IDLE:-50}
SETTLE_MAX=${CONNS_SETTLE_MAX:-300}
PROFILE=${CONNS_PROFILE:-0}
PROFILE_S=${CONNS_PROFILE_S:-10}
for v in TOTAL NGW PER_CLIENT IDLE FANOUT_RATE DIAL_RATE PORT_BASE SETTLE_IDLE SETTLE_MAX PROFILE_S; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-conns: $v=${!v}: want a positive integer" >&2; exit 1; }
done
[[ $BROADCASTS == live || $BROADCASTS == inbox ]] || { echo "bench-conns: CONNS_BROADCASTS=$BROADCASTS: want live or inbox" >&2; exit 1; }
if ((PER_CLIENT > 18000)); then
	echo "bench-conns: CONNS_PER_CLIENT=$PER_CLIENT: a process may hold 20,000 files here" >&2
	exit 1
fi
if (((TOTAL + NGW - 1) / NGW > 18500)); then
	echo "bench-conns: $TOTAL connections over $NGW gateways is more than 18,500 per gateway (20,000 files per process)" >&2
	exit 1
fi
T0=$(date +%s)
RUN_DIR=$STACK_DIR/bench/conns-$T0
mkdir -p "$RUN_DIR"
ulimit -n "$(ulimit -Hn)"

PIDS=()
STARTED_STACK=0
# shellcheck source=scripts/bench/procs.sh
. scripts/bench/procs.sh
stop_all() {
	stop_pids 20 "${PIDS[@]}"
	PIDS=()
}
cleanup() {
	stop_all
	if [[ $STARTED_STACK == 1 && ${BENCH_KEEP_STACK:-0} != 1 ]]; then
		bash scripts/stack/stack.sh down || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

COMMIT=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || COMMIT+="+dirty"
ROWS=()
FAILED=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
# p50, p99 and last (ms) of the latencies (µs, one a line) in FILES, or "- - -".
percentiles() {
	cat "$@" 2>/dev/null | sort -n | awk '{ v[n++] = $1 } END {
		if (n == 0) { print "- - -"; exit }
		i50 = int(0.50 * n); i99 = int(0.99 * n); if (i99 >= n) i99 = n - 1
		printf "%.0f %.0f %.0f\n", v[i50] / 1000, v[i99] / 1000, v[n - 1] / 1000 }'
}

# ---- 1. Idle memory per read mode ----
if [[ ${CONNS_SKIP_IDLE:-0} != 1 ]]; then
	echo "bench-conns: idle memory, $IDLE connections per mode (logs: $RUN_DIR/idle-*.log)"
	"$GO" test -c -o "$RUN_DIR/delivery.test" ./delivery/
	idle() { # LABEL MODE [ENV...]
		local label=$1 mode=$2 log=$RUN_DIR/idle-$1.log per total
		shift 2
		if ! (cd delivery && env IDLE_MODES="$mode" IDLE_CONNS="$IDLE" "$@" timeout 600 "$RUN_DIR/delivery.test" \
			-test.run '^$' -test.bench 'IdleRSS$' -test.benchtime 1x) >"$log" 2>&1; then
			ROWS+=("| idle RSS per connection, $label | failed, see $log |")
			FAILED=1
			return
		fi
		per=$(awk '/rss-bytes\/conn/ { for (i = 2; i <= NF; i++) if ($i == "rss-bytes/conn") print $(i - 1) }' "$log")
		total=$(awk '/rss-MiB/ { for (i = 2; i <= NF; i++) if ($i == "rss-MiB") print $(i - 1) }' "$log")
		ROWS+=("| idle RSS per connection, $label ($IDLE connections) | $per B (gateway $total MiB) |")
	}
	idle "goroutine mode" goroutine
	idle "epoll mode" epoll
	idle "epoll mode, read buffer 257, GOMEMLIMIT=64MiB" epoll IDLE_READ_BUFFER=257 GOMEMLIMIT=64MiB
fi

# ---- 2. Capacity on the real stack ----
if [[ ${CONNS_SKIP_CAPACITY:-0} != 1 ]]; then
	if [[ $(bash scripts/stack/stack.sh status 2>/dev/null | grep -Ec '^(kafka|cassandra|redis) +ready') != 3 ]]; then
		STARTED_STACK=1
	fi
	bash scripts/stack/stack.sh up
	"$GO" build -o bin/herald ./cmd/herald
	"$GO" build -o bin/herald-conns ./cmd/herald-conns
	set -a
	# shellcheck disable=SC1091
	. "$STACK_DIR/herald.env"
	set +a
	export HERALD_STORE=cassandra
	export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
	export HERALD_API_KEYS=bench-key
	export HERALD_LOG_LEVEL=${HERALD_LOG_LEVEL:-warn}
	export HERALD_CASSANDRA_KEYSPACE=herald_conns_$T0
	export HERALD_TOPIC_PREFIX=conns$T0.
	export HERALD_TRANSACTIONAL_ID=conns$T0-enricher
	unset HERALD_ADMIN_ADDR
	API=http://127.0.0.1:$PORT_BASE
	RUN=conns$T0
	TOPIC=capacity-$T0
	EVENT=$RUN-broadcast
	echo "bench-conns: capacity, $TOTAL connections (broadcasts=$BROADCASTS) over $NGW gateways; keyspace $HERALD_CASSANDRA_KEYSPACE; logs in $RUN_DIR"

	bin/herald migrate >"$RUN_DIR/migrate.log" 2>&1 || { cat "$RUN_DIR/migrate.log"; exit 1; }
	bin/herald topics >"$RUN_DIR/topics.log" 2>&1 || { cat "$RUN_DIR/topics.log"; exit 1; }
	start_role() { # NAME PORT ROLE [ENV...]
		local name=$1 port=$2 role=$3
		shift 3
		env HERALD_ADDR=127.0.0.1:$port "$@" bin/herald "$role" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
		PIDS+=("$!")
	}
	start_role api "$PORT_BASE" api HERALD_GATEWAY_ID="$RUN-api"
	PROF_ENV_ENRICHER=() PROF_ENV_GW=()
	if [[ $PROFILE == 1 ]]; then
		PROF_ENV_GW=(HERALD_ADMIN_ADDR=127.0.0.1:$((PORT_BASE + 100)))
		PROF_ENV_ENRICHER=(HERALD_ADMIN_ADDR=127.0.0.1:$((PORT_BASE + 101)))
	fi
	start_role enricher $((PORT_BASE + 1)) enricher HERALD_FANOUT_RATE="$FANOUT_RATE" "${PROF_ENV_ENRICHER[@]}"
	GW_PIDS=() GW_URLS=() GW_PORTS=()
	for g in $(seq 1 "$NGW"); do
		port=$((PORT_BASE + 1 + g))
		prof=()
		((g == 1)) && prof=("${PROF_ENV_GW[@]}")
		start_role "gateway-$g" "$port" gateway HERALD_GATEWAY_ID="$RUN-gw$g" HERALD_WS_READ_MODE=epoll \
			HERALD_HTTP_MAX_CONNS=19000 HERALD_WS_UPGRADE_RATE=5000 HERALD_WS_UPGRADE_BURST=5000 "${prof[@]}"
		GW_PIDS+=("${PIDS[-1]}") GW_URLS+=("ws://127.0.0.1:$port") GW_PORTS+=("$port")
	done
	for port in $(seq "$PORT_BASE" $((PORT_BASE + 1 + NGW))); do
		for i in $(seq 1 120); do
			curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
			for pid in "${PIDS[@]}"; do
				kill -0 "$pid" 2>/dev/null || { echo "bench-conns: a role exited; see $RUN_DIR/*.log" >&2; tail -n 20 "$RUN_DIR"/*.log >&2; exit 1; }
			done
			((i == 120)) && { echo "bench-conns: 127.0.0.1:$port not ready after 60 s" >&2; exit 1; }
			sleep 0.5
		done
	done
	rss_gateways() { # total VmRSS of the gateways, MiB
		local pid kb total=0
		for pid in "${GW_PIDS[@]}"; do
			kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
			total=$((total + kb))
		done
		awk -v kb=$total 'BEGIN { printf "%.0f", kb / 1024 }'
	}
	metric_sum() { # NAME-AND-LABELS: the sum over the gateways
		local port
		for port in "${GW_PORTS[@]}"; do
			curl -fsS -m 10 "http://127.0.0.1:$port/metrics" || true
		done | awk -v m="$1" 'index($0, m " ") == 1 { s += $NF } END { printf "%d", s }'
	}
	metric_at() { # PORT NAME-AND-LABELS: the value on one role ("0" when absent)
		curl -fsS -m 10 "http://127.0.0.1:$1/metrics" 2>/dev/null |
			awk -v m="$2" 'index($0, m " ") == 1 { v = $NF } END { printf "%.3f", v + 0 }'
	}
	metric_max() { # NAME-AND-LABELS: the largest value over the gateways
		local port
		for port in "${GW_PORTS[@]}"; do
			metric_at "$port" "$1"
			echo
		done | sort -g | tail -n 1
	}
	cpu_idle() { # SECONDS: the machine's idle CPU share over that long, %
		local a b
		read -r -a a < <(grep '^cpu ' /proc/stat)
		sleep "$1"
		read -r -a b < <(grep '^cpu ' /proc/stat)
		awk -v i=$((b[4] + b[5] - a[4] - a[5])) \
			-v t=$((b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[4] - a[5] - a[6] - a[7] - a[8])) \
			'BEGIN { printf "%.0f", (t > 0 ? 100 * i / t : 0) }'
	}
	RSS_EMPTY=$(rss_gateways)

	# Members, through the API: calls of 2,000 ids, two at a time (each
	# member is a conditional write in Cassandra).
	began=$(date +%s)
	members() { # FROM TO (inclusive)
		local ids
		ids=$(seq "$1" "$2" | sed "s/.*/\"$RUN-&\"/" | paste -sd,)
		curl -fsS -m 120 -o /dev/null -X POST -H "Authorization: Bearer bench-key" -H 'Content-Type: application/json' \
			--data-binary "{\"add\":[$ids]}" "$API/v1/audiences/$TOPIC/members"
	}
	jobs_=()
	for ((from = 0; from < TOTAL; from += 2000)); do
		to=$((from + 1999 < TOTAL - 1 ? from + 1999 : TOTAL - 1))
		members "$from" "$to" &
		jobs_+=("$!")
		if ((${#jobs_[@]} == 2)); then
			wait "${jobs_[0]}" || { echo "bench-conns: adding members failed; see $RUN_DIR/api.log" >&2; exit 1; }
			jobs_=("${jobs_[@]:1}")
		fi
	done
	for j in "${jobs_[@]}"; do
		wait "$j" || { echo "bench-conns: adding members failed; see $RUN_DIR/api.log" >&2; exit 1; }
	done
	MEMBERS_S=$(($(date +%s) - began))
	echo "bench-conns: $TOTAL members added in ${MEMBERS_S} s"

	# The clients.
	GATEWAYS=$(IFS=,; echo "${GW_URLS[*]}")
	CLIENT_PIDS=()
	began=$(date +%s)
	for ((from = 0, k = 0; from < TOTAL; from += PER_CLIENT, k++)); do
		count=$((TOTAL - from < PER_CLIENT ? TOTAL - from : PER_CLIENT))
		bin/herald-conns -gateways "$GATEWAYS" -run "$RUN" -from "$from" -count "$count" -event "$EVENT" \
			-dial-rate "$DIAL_RATE" -timeout 20m -broadcasts "$BROADCASTS" \
			-out "$RUN_DIR/latency-$k.txt" -out-live "$RUN_DIR/broadcast-latency-$k.txt" >"$RUN_DIR/client-$k.log" 2>&1 </dev/null &
		PIDS+=("$!") CLIENT_PIDS+=("$!")
	done
	NCLIENTS=${#CLIENT_PIDS[@]}
	while :; do
		ready=$(cat "$RUN_DIR"/client-*.log 2>/dev/null | grep -c '^READY ' || true)
		((ready == NCLIENTS)) && break
		for pid in "${CLIENT_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null || { echo "bench-conns: a client exited before it was ready:" >&2; tail -n 5 "$RUN_DIR"/client-*.log >&2; exit 1; }
		done
		(($(date +%s) - began > 900)) && { echo "bench-conns: clients not ready after 900 s" >&2; exit 1; }
		sleep 1
	done
	CONNECT_S=$(($(date +%s) - began))
	echo "bench-conns: $TOTAL connections open in ${CONNECT_S} s; waiting for the gateways to load their members' topics"
	began=$(date +%s)
	while :; do
		# Every user still connected (one per connection) has their topics
		# and preferences loaded; a connection the gateways dropped
		# meanwhile (a pong timeout on a saturated machine) is reported by
		# its client as dropped.
		loaded=$(metric_sum 'herald_gateway_membership_loads_total{result="ok"}')
		open_now=$(metric_sum 'herald_connections')
		((open_now > 0 && loaded >= open_now)) && break
		if (($(date +%s) - began > 900)); then
			echo "bench-conns: the gateways loaded $loaded of $TOTAL users' topics in 900 s (failed: $(metric_sum 'herald_gateway_membership_loads_total{result="error"}'), dropped: $(metric_sum 'herald_gateway_membership_loads_total{result="dropped"}'))" >&2
			exit 1
		fi
		sleep 1
	done
	LOADS_S=$(($(date +%s) - began))
	sleep 3 # the online-member sets are written in batches, once a second at most
	# Let the aftermath of the setup (the loads' Cassandra compactions, the
	# members' catch-up) pass: post once the CPU has been SETTLE_IDLE % idle
	# in three 5 s readings in a row (one came too soon after the loads'
	# storm, with more of its work to follow), or after SETTLE_MAX s. What
	# holding the connections costs stays.
	began=$(date +%s)
	calm=0
	while :; do
		IDLE_BEFORE=$(cpu_idle 5)
		if ((IDLE_BEFORE >= SETTLE_IDLE)); then calm=$((calm + 1)); else calm=0; fi
		((calm >= 3 || $(date +%s) - began >= SETTLE_MAX)) && break
	done
	SETTLE_S=$(($(date +%s) - began))
	RSS_HELD=$(rss_gateways)
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

	cpu_ticks() { # PID...: utime+stime of each, in clock ticks (0 when gone)
		local pid f
		for pid in "$@"; do
			if read -r -a f 2>/dev/null <"/proc/$pid/stat"; then
				# Fields after the command, which has no spaces here.
				echo $((f[13] + f[14]))
			else
				echo 0
			fi
		done
	}
	PROF_PIDS=() CPU_NAMES=() CPU_OF=()
	if [[ $PROFILE == 1 ]]; then
		# Who uses the CPU while the frames go out: each role, each client,
		# and the servers, over the profile's window.
		CPU_NAMES=(api enricher) CPU_OF=("${PIDS[0]}" "${PIDS[1]}")
		for g in $(seq 1 "$NGW"); do CPU_NAMES+=("gateway-$g") CPU_OF+=("${GW_PIDS[$((g - 1))]}"); done
		for k in "${!CLIENT_PIDS[@]}"; do CPU_NAMES+=("client-$k") CPU_OF+=("${CLIENT_PIDS[$k]}"); done
		for srv in kafka cassandra redis; do
			[[ -r $STACK_DIR/run/$srv.pid ]] && CPU_NAMES+=("$srv") CPU_OF+=("$(cat "$STACK_DIR/run/$srv.pid")")
		done
		mapfile -t CPU_BEFORE < <(cpu_ticks "${CPU_OF[@]}")
		for pair in "gateway-1:$((PORT_BASE + 100))" "enricher:$((PORT_BASE + 101))"; do
			curl -fsS -m $((PROFILE_S + 30)) -o "$RUN_DIR/profile-${pair%%:*}.pb.gz" \
				"http://127.0.0.1:${pair#*:}/debug/pprof/profile?seconds=$PROFILE_S" &
			PROF_PIDS+=("$!")
		done
		sleep 0.5
	fi
	created=$(date -u +%FT%T.%NZ)
	curl -fsS -m 30 -o /dev/null -X POST -H "Authorization: Bearer bench-key" -H 'Content-Type: application/json' \
		--data-binary "{\"id\":\"$EVENT\",\"audience\":\"$TOPIC\",\"type\":\"broadcast\",\"title\":\"to every connection\",\"created_at\":\"$created\"}" \
		"$API/v1/events" || { echo "bench-conns: POST /v1/events failed" >&2; exit 1; }
	for pid in "${PROF_PIDS[@]}"; do
		wait "$pid" || echo "bench-conns: a CPU profile failed (see $RUN_DIR)" >&2
	done
	if [[ $PROFILE == 1 ]]; then
		mapfile -t CPU_AFTER < <(cpu_ticks "${CPU_OF[@]}")
		hz=$(getconf CLK_TCK)
		for i in "${!CPU_NAMES[@]}"; do
			printf '%s %s\n' "${CPU_NAMES[$i]}" "$(awk -v d=$((CPU_AFTER[i] - CPU_BEFORE[i])) -v hz="$hz" 'BEGIN { printf "%.2f", d / hz }')"
		done >"$RUN_DIR/cpu-window.txt"
		ROWS+=("| capacity: CPU seconds in the ${PROFILE_S} s from the post, per process | $(awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }' "$RUN_DIR/cpu-window.txt") |")
		for f in "$RUN_DIR"/profile-*.pb.gz; do
			$GO tool pprof -top -nodecount=40 "$f" >"${f%.pb.gz}.top.txt" 2>&1 || true
		done
	fi
	rc=0
	for pid in "${CLIENT_PIDS[@]}"; do
		wait "$pid" || rc=1
	done
	RSS_AFTER=$(rss_gateways)
	LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
	# Where the broadcast frame's time went (one broadcast: a sum is its
	# value): created_at to the fan-out's publish, to the slowest gateway's
	# receipt, and the slowest gateway's walk queuing its frames.
	PUBLISH_MS=$(awk -v s="$(metric_at $((PORT_BASE + 1)) herald_fanout_broadcast_publish_delay_seconds_sum)" 'BEGIN { printf "%.0f", s * 1000 }')
	ARRIVAL_MS=$(awk -v s="$(metric_max herald_gateway_broadcast_delay_seconds_sum)" 'BEGIN { printf "%.0f", s * 1000 }')
	QUEUE_MS=$(awk -v s="$(metric_max herald_gateway_broadcast_queue_seconds_sum)" 'BEGIN { printf "%.0f", s * 1000 }')
	# The clients exited: take them out of the set stop_all waits for.
	PIDS=("${PIDS[@]:0:$((${#PIDS[@]} - NCLIENTS))}")
	[[ $rc == 0 ]] || FAILED=1
	held=0 received=0 missing=0 duplicate=0 dropped=0 live_received=0 live_duplicate=0
	for log in "$RUN_DIR"/client-*.log; do
		line=$(grep '^RESULT ' "$log" || true)
		[[ -n $line ]] || { echo "bench-conns: no RESULT in $log" >&2; FAILED=1; continue; }
		held=$((held + $(field held "$line"))) received=$((received + $(field received "$line")))
		missing=$((missing + $(field missing "$line"))) duplicate=$((duplicate + $(field duplicate "$line")))
		dropped=$((dropped + $(field dropped "$line")))
		# The live_* fields were appended to RESULT later: absent counts 0.
		live_received=$((live_received + $(field live_received "$line" | grep . || echo 0)))
		live_duplicate=$((live_duplicate + $(field live_duplicate "$line" | grep . || echo 0)))
	done
	read -r p50 p99 last < <(percentiles "$RUN_DIR"/latency-*.txt)
	read -r lp50 lp99 llast < <(percentiles "$RUN_DIR"/broadcast-latency-*.txt)
	ROWS+=("| capacity: connections held ($NGW epoll gateways, $NCLIENTS client processes) | $held of $TOTAL (opened in $CONNECT_S s, every user's topics and preferences loaded $LOADS_S s later; $TOTAL members added in $MEMBERS_S s) |")
	ROWS+=("| capacity: gateways' total RSS, started / holding $TOTAL / after the broadcast | $RSS_EMPTY / $RSS_HELD / $RSS_AFTER MiB ($(awk -v a="$RSS_HELD" -v b="$RSS_EMPTY" -v n="$TOTAL" 'BEGIN { printf "%.0f", (a - b) * 1048576 / n }') B per connection held) |")
	ROWS+=("| capacity: one broadcast to all, produce→inbox notification p50 / p99 / last | $p50 / $p99 / $last ms |")
	if [[ $BROADCASTS == live ]]; then
		ROWS+=("| capacity: one broadcast to all, produce→broadcast frame p50 / p99 / last (received of $TOTAL) | $lp50 / $lp99 / $llast ms ($live_received of $TOTAL; $live_duplicate duplicate) |")
		ROWS+=("| capacity: the broadcast frame's way: created_at→fan-out publish / →slowest gateway's receipt / slowest gateway's queuing | $PUBLISH_MS / $ARRIVAL_MS / $QUEUE_MS ms |")
	else
		ROWS+=("| capacity: one broadcast to all, produce→broadcast frame p50 / p99 / last (received of $TOTAL) | not asked for (CONNS_BROADCASTS=inbox; $live_received received) |")
	fi
	ROWS+=("| capacity: received / missing / duplicate / dropped | $received / $missing / $duplicate / $dropped |")
	ROWS+=("| capacity: load average before / after the broadcast; idle CPU before it | $LOAD_BEFORE / $LOAD_AFTER; $IDLE_BEFORE % (after $SETTLE_S s of settling) |")
	stop_all
fi

echo
echo "bench-conns: $(nproc) CPUs, $(date -u +%FT%TZ), commit $COMMIT, $(($(date +%s) - T0)) s in all"
echo "| measurement | result |"
echo "|---|---|"
printf '%s\n' "${ROWS[@]}"
exit "$FAILED"
