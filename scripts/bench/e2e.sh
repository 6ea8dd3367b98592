#!/usr/bin/env bash
# End-to-end benchmark of the durable path on the real (secured) stack:
# starts the stack when it is down (and stops it again at the end, unless
# BENCH_KEEP_STACK=1), builds herald and herald-load, and for each run of the
# fixed load below migrates a fresh keyspace, creates topics under a fresh
# prefix and starts 1 enricher and 2 gateways (Redis routing) of its own, so
# that every run starts from the same empty state and the roles' metrics
# cover that run only, and drops that keyspace and those topics after it
# (scripts/bench/cleanup: a series of runs would otherwise leave the broker
# and the node with ever more partitions and tables, slowing the later
# runs); logs under $STACK_DIR/bench/run-*/. Prints one table.
# Server CPU per delivered event is the utime+stime (/proc/<pid>/stat) of the
# three herald roles and the Kafka, Cassandra and Redis servers across each
# run (herald-load itself excluded), divided by the unique notifications
# delivered. After the table, per run, "where the time goes": the mean of
# every herald_*_seconds histogram (herald_enricher_stage_seconds by stage,
# herald_enrich_batch_seconds, the router's and the gateway's…) that the
# enricher and the gateways expose on /metrics, over that run.
# Exits 1 when any run lost, doubled or failed to deliver a notification.
#
#	make bench-e2e        # or: bash scripts/bench/e2e.sh
#
# Settings (environment):
#	BENCH_OLD=<commit>    also build herald and herald-load of that commit (a
#	                      git worktree in $STACK_DIR/bench/old-src, removed at
#	                      exit) and run each load for the old and the new
#	                      build alternately, old first; the table gets a build
#	                      column and a new/old ratio of the medians per load
#	BENCH_ROUNDS=N        old/new pairs (or runs, without BENCH_OLD) per load; 1
#	BENCH_PROFILE=1       start the new build's roles with --admin-addr on
#	                      loopback and take a CPU profile of the enricher and
#	                      of gateway-a during BENCH_PROFILE_RUN (whose figures
#	                      then carry the profiler's small cost); the old build
#	                      may not have the setting and is never profiled
#	BENCH_PROFILE_RUN     label of the run to profile; steady-2000x15s-1000u
#	BENCH_PROFILE_SECONDS length of the profile; 10
#	BENCH_PROFILE_DELAY   seconds after the load's clients connected; 2
#	BENCH_LOADS           the runs, "label:users:events:rate ..." (rate 0: as
#	                      fast as possible); the fixed three by default. Only
#	                      for smoke tests: figures are comparable across
#	                      commits only with the defaults
#	BENCH_PORT_BASE       first of the roles' ports; 19101
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
BENCH_DIR=$STACK_DIR/bench
GO=${GO:-go}
PORT_BASE=${BENCH_PORT_BASE:-19101}
ADMIN_BASE=$((PORT_BASE + 10))
ROUNDS=${BENCH_ROUNDS:-1}
PROFILE=${BENCH_PROFILE:-0}
PROFILE_RUN=${BENCH_PROFILE_RUN:-steady-2000x15s-1000u}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-10}
PROFILE_DELAY=${BENCH_PROFILE_DELAY:-2}
LOADS=${BENCH_LOADS:-"burst-20k-200u:200:20000:0 steady-500x20s-200u:200:10000:500 steady-2000x15s-200u:200:30000:2000 steady-2000x15s-1000u:1000:30000:2000"}
OLD=${BENCH_OLD:-}
OLD_SRC=$BENCH_DIR/old-src
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-e2e: BENCH_ROUNDS=$ROUNDS: want a positive integer" >&2; exit 1; }
# Only this script hands out admin addresses (one per role, new build only).
unset HERALD_ADMIN_ADDR
mkdir -p "$BENCH_DIR"
rm -rf "$BENCH_DIR"/run-* "$BENCH_DIR"/profile-*

ROLE_PIDS=()
STARTED_STACK=0
WORKTREE=0
# shellcheck source=scripts/bench/procs.sh
. scripts/bench/procs.sh
stop_roles() {
	stop_pids 10 "${ROLE_PIDS[@]}"
	ROLE_PIDS=()
}
cleanup() {
	stop_roles
	if [[ $WORKTREE == 1 ]]; then
		git worktree remove --force "$OLD_SRC" 2>/dev/null || { rm -rf "$OLD_SRC"; git worktree prune; }
	fi
	if [[ $STARTED_STACK == 1 && ${BENCH_KEEP_STACK:-0} != 1 ]]; then
		bash scripts/stack/stack.sh down || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s)
NEW_DESC=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || NEW_DESC+="+dirty"
if [[ -n $OLD ]]; then
	OLD_SHA=$(git rev-parse --verify --quiet "$OLD^{commit}") || { echo "bench-e2e: BENCH_OLD=$OLD is not a commit" >&2; exit 1; }
	OLD_DESC=$(git rev-parse --short "$OLD_SHA")
fi
if [[ $(bash scripts/stack/stack.sh status 2>/dev/null | grep -Ec '^(kafka|cassandra|redis) +ready') != 3 ]]; then
	STARTED_STACK=1
fi
bash scripts/stack/stack.sh up
"$GO" build -o bin/herald ./cmd/herald
"$GO" build -o bin/herald-load ./cmd/herald-load
"$GO" build -o bin/bench-cleanup ./scripts/bench/cleanup
if [[ -n $OLD ]]; then
	# A leftover of a run killed with -9 would make worktree add fail.
	git worktree remove --force "$OLD_SRC" 2>/dev/null || rm -rf "$OLD_SRC"
	git worktree prune
	git worktree add --detach "$OLD_SRC" "$OLD_SHA" >/dev/null
	WORKTREE=1
	echo "bench-e2e: building the old build $OLD_DESC in $OLD_SRC"
	(cd "$OLD_SRC" && "$GO" build -o bin/herald ./cmd/herald && "$GO" build -o bin/herald-load ./cmd/herald-load)
fi

set -a
# shellcheck disable=SC1091
. "$STACK_DIR/herald.env"
set +a
export HERALD_STORE=cassandra
export HERALD_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
export HERALD_API_KEYS=bench-key
export HERALD_LOG_LEVEL=${HERALD_LOG_LEVEL:-warn}
echo "bench-e2e: logs in $BENCH_DIR/run-*"

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
# cpu_each: "name ticks" per role and server (roles in start order:
# enricher, gateway-a, gateway-b), for the per-process split of CPU.
cpu_each() {
	local -a names=(enricher gateway-a gateway-b kafka cassandra redis)
	local -a pids=("${ROLE_PIDS[@]}" "${SERVER_PIDS[@]}")
	local i stat rest
	for i in "${!pids[@]}"; do
		stat=$(<"/proc/${pids[i]}/stat") || continue
		rest=${stat##*) }
		read -r -a f <<<"$rest"
		echo "${names[i]:-pid${pids[i]}} $((f[11] + f[12]))"
	done
}
# cpu_split BEFORE AFTER DELIVERED: the per-process CPU per delivered
# notification (ms), one "name=ms" each.
cpu_split() {
	awk -v hz="$CLK_TCK" -v n="$3" 'NR == FNR { b[$1] = $2; next } { if (n > 0) printf "%s=%.3f ", $1, ($2 - b[$1]) / hz * 1000 / n }' \
		<(echo "$1") <(echo "$2")
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# The roles' public ports (health, metrics, WebSockets) and, with
# BENCH_PROFILE=1, their admin ports (pprof).
ROLE_NAMES=(enricher gateway-a gateway-b)
GATEWAYS=ws://127.0.0.1:$((PORT_BASE + 1)),ws://127.0.0.1:$((PORT_BASE + 2))

start_role() { # DIR BIN NAME PORT ROLE [ENV...]
	local dir=$1 bin=$2 name=$3 port=$4 role=$5
	shift 5
	env HERALD_ADDR=127.0.0.1:$port "$@" "$bin" "$role" >"$dir/$name.log" 2>&1 </dev/null &
	ROLE_PIDS+=("$!")
}

# start_roles DIR BIN ADMIN: a fresh keyspace and topic prefix, migrated and
# created by that build's own herald, then its three roles.
start_roles() {
	local dir=$1 bin=$2 admin=$3 i port
	local -a adm=("" "" "")
	"$bin" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log"; return 1; }
	"$bin" topics >"$dir/topics.log" 2>&1 || { cat "$dir/topics.log"; return 1; }
	if [[ $admin == 1 ]]; then
		for i in 0 1 2; do adm[i]=HERALD_ADMIN_ADDR=127.0.0.1:$((ADMIN_BASE + i)); done
	fi
	start_role "$dir" "$bin" enricher $((PORT_BASE)) enricher ${adm[0]:+"${adm[0]}"}
	start_role "$dir" "$bin" gateway-a $((PORT_BASE + 1)) gateway HERALD_GATEWAY_ID=bench-gwa ${adm[1]:+"${adm[1]}"}
	start_role "$dir" "$bin" gateway-b $((PORT_BASE + 2)) gateway HERALD_GATEWAY_ID=bench-gwb ${adm[2]:+"${adm[2]}"}
	for port in $PORT_BASE $((PORT_BASE + 1)) $((PORT_BASE + 2)); do
		for i in $(seq 1 120); do
			curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
			for pid in "${ROLE_PIDS[@]}"; do
				kill -0 "$pid" 2>/dev/null || { echo "bench-e2e: a role exited; see $dir/*.log" >&2; tail -n 20 "$dir"/*.log >&2; return 1; }
			done
			[[ $i == 120 ]] && { echo "bench-e2e: 127.0.0.1:$port not ready after 60 s" >&2; return 1; }
			sleep 0.5
		done
	done
}

scrape() { # DIR WHEN: every role's /metrics into DIR/metrics-NAME-WHEN.txt
	local i
	for i in 0 1 2; do
		curl -fsS -m 10 -o "$1/metrics-${ROLE_NAMES[i]}-$2.txt" "http://127.0.0.1:$((PORT_BASE + i))/metrics" ||
			echo "bench-e2e: scraping ${ROLE_NAMES[i]}'s /metrics failed" >&2
	done
}

# breakdown DIR: the mean, over the run (after minus before), of every
# herald_*_seconds histogram (or summary), the enricher's apart and the two
# gateways' summed, one markdown row per series.
breakdown() {
	local dir=$1 f files=()
	for f in "$dir"/metrics-*-before.txt "$dir"/metrics-*-after.txt; do
		[[ -s $f ]] && files+=("$f")
	done
	((${#files[@]} > 0)) || return 0
	awk '
	FNR == 1 {
		grp = (FILENAME ~ /metrics-enricher-/) ? "enricher" : "gateways"
		sgn = (FILENAME ~ /-before\.txt$/) ? -1 : 1
	}
	# The ops routes are only the scrapes and probes of this script.
	/^herald_http_request_seconds_(sum|count)\{route="\/(metrics|readyz|healthz)"/ { next }
	/^herald_[a-zA-Z0-9_]*_seconds_(sum|count)[{ ]/ {
		val = $NF
		series = substr($0, 1, length($0) - length(val) - 1)
		labels = ""
		if ((i = index(series, "{")) > 0) { labels = substr(series, i); series = substr(series, 1, i - 1) }
		kind = (series ~ /_sum$/) ? "sum" : "count"
		name = substr(series, 1, length(series) - length(kind) - 1)
		k = grp SUBSEP name SUBSEP labels
		seen[k] = 1
		if (kind == "sum") s[k] += sgn * val; else c[k] += sgn * val
	}
	END {
		for (k in seen) {
			split(k, p, SUBSEP)
			if (c[k] < 1) continue
			printf "| %s | %s | %s | %d | %.3f | %.1f |\n", p[1], p[2], (p[3] == "" ? "—" : p[3]), c[k], s[k] / c[k] * 1000, s[k]
		}
	}' "${files[@]}" | sort
}

# profile DIR LOADLOG: once the load's clients are connected and
# PROFILE_DELAY has passed, a CPU profile of the enricher and of gateway-a
# at once; gives up when the load ends first (DIR/load.done).
profile() {
	local dir=$1 log=$2 i name port
	for i in $(seq 1 1200); do
		grep -q '^connected ' "$log" 2>/dev/null && break
		[[ -e $dir/load.done ]] && return 0
		sleep 0.1
	done
	sleep "$PROFILE_DELAY"
	for i in 0 1; do
		name=${ROLE_NAMES[i]} port=$((ADMIN_BASE + i))
		curl -fsS -m $((PROFILE_SECONDS + 60)) -o "$dir/$name.cpu.pb.gz" \
			"http://127.0.0.1:$port/debug/pprof/profile?seconds=$PROFILE_SECONDS" ||
			echo "bench-e2e: CPU profile of $name failed" >&2 &
	done
	wait
}

ROWS=()
BREAKDOWNS=()
PROFILES=()
R_LABEL=() R_BUILD=() R_RATE=() R_P50=() R_P99=() R_CPU=()
FAILED=0
NRUN=0
run() { # BUILD LABEL USERS EVENTS RATE ROUND
	local build=$1 label=$2 users=$3 events=$4 rate=$5 round=$6
	local bin=bin/herald loadbin=bin/herald-load desc=$NEW_DESC admin=0
	local before after line rc cpu load dir tag prof_pid="" name top
	if [[ $build == old ]]; then
		bin=$OLD_SRC/bin/herald loadbin=$OLD_SRC/bin/herald-load desc=$OLD_DESC
	elif [[ $PROFILE == 1 && $label == "$PROFILE_RUN" ]]; then
		admin=1
	fi
	NRUN=$((NRUN + 1))
	tag=${T0}r$NRUN
	dir=$BENCH_DIR/run-$NRUN-$label-$build
	mkdir -p "$dir"
	export HERALD_CASSANDRA_KEYSPACE=herald_bench_${T0}_$NRUN
	export HERALD_TOPIC_PREFIX=bench$tag.
	export HERALD_TRANSACTIONAL_ID=bench$tag-enricher
	echo "bench-e2e: $label ($build $desc, round $round): $events events over $users users at ${rate}/s (0: as fast as possible); keyspace $HERALD_CASSANDRA_KEYSPACE, topic prefix $HERALD_TOPIC_PREFIX"
	local cells="| $label |"
	[[ -n $OLD ]] && cells="| $label | $build $desc | $round |"
	if ! start_roles "$dir" "$bin" "$admin"; then
		stop_roles
		ROWS+=("$cells roles did not start (see $dir) | | | | | | |")
		FAILED=1
		return
	fi
	scrape "$dir" before
	if [[ $admin == 1 ]]; then
		profile "$dir" "$dir/load.log" &
		prof_pid=$!
	fi
	before=$(cpu_ticks)
	local each_before each_after
	each_before=$(cpu_each)
	rc=0
	timeout 150 "$loadbin" -topic "${HERALD_TOPIC_PREFIX}events" -gateways "$GATEWAYS" \
		-users "$users" -events "$events" -rate "$rate" -drain 30s -timeout 140s \
		-run "bench$tag-$label" -label "$label" 2>&1 | tee "$dir/load.log" || rc=$?
	after=$(cpu_ticks)
	each_after=$(cpu_each)
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	touch "$dir/load.done"
	[[ -n $prof_pid ]] && wait "$prof_pid"
	scrape "$dir" after
	stop_roles
	# The run's keyspace and topics go, so that the next runs do not pay
	# for their partitions and tables (scripts/bench/cleanup).
	bin/bench-cleanup -keyspace "$HERALD_CASSANDRA_KEYSPACE" -topic-prefix "$HERALD_TOPIC_PREFIX" >"$dir/cleanup.log" 2>&1 ||
		echo "bench-e2e: cleaning up after the run failed: see $dir/cleanup.log" >&2
	local split
	split=$(cpu_split "$each_before" "$each_after" "$(field delivered "$(grep '^RESULT ' "$dir/load.log" || true)")")
	BREAKDOWNS+=("$label ($build $desc, round $round)"$'\n'"$(breakdown "$dir")"$'\n'"CPU per delivered notification by process (ms): $split")
	if [[ -n $prof_pid ]]; then
		for name in enricher gateway-a; do
			[[ -s $dir/$name.cpu.pb.gz ]] || continue
			top=$BENCH_DIR/profile-$NRUN-$label-$name.top.txt
			"$GO" tool pprof -top -nodecount=40 "$bin" "$dir/$name.cpu.pb.gz" >"$top" 2>&1 ||
				echo "bench-e2e: go tool pprof of $name failed: see $top" >&2
			PROFILES+=("$top (profile: $dir/$name.cpu.pb.gz)")
		done
	fi
	line=$(grep '^RESULT ' "$dir/load.log" || true)
	if [[ -z $line ]]; then
		ROWS+=("$cells failed (exit $rc, see $dir/load.log) | | | | | | |")
		FAILED=1
		return
	fi
	[[ $rc == 0 ]] || FAILED=1
	local delivered
	delivered=$(field delivered "$line")
	cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$delivered" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1000 / n; else print "-" }')
	ROWS+=("$(printf '%s %s | %s | %s / %s / %s | %s | %s | %s | %s |' "$cells" \
		"$(field rate_in "$line")" "$(field delivered_per_s "$line")" \
		"$(field p50_ms "$line")" "$(field p90_ms "$line")" "$(field p99_ms "$line")" \
		"$(field missing "$line")" "$(field duplicate "$line")" "$cpu" "$load")")
	R_LABEL+=("$label") R_BUILD+=("$build") R_RATE+=("$(field delivered_per_s "$line")")
	R_P50+=("$(field p50_ms "$line")") R_P99+=("$(field p99_ms "$line")") R_CPU+=("$cpu")
}

if [[ -n $OLD ]]; then
	for spec in $LOADS; do
		IFS=: read -r label users events rate <<<"$spec"
		for round in $(seq 1 "$ROUNDS"); do
			run old "$label" "$users" "$events" "$rate" "$round"
			run new "$label" "$users" "$events" "$rate" "$round"
		done
	done
else
	for round in $(seq 1 "$ROUNDS"); do
		for spec in $LOADS; do
			IFS=: read -r label users events rate <<<"$spec"
			run new "$label" "$users" "$events" "$rate" "$round"
		done
	done
fi

# median LABEL BUILD ARRAY: the median of that load's and build's values.
median() {
	local -n vals=$3
	local i
	for i in "${!R_LABEL[@]}"; do
		[[ ${R_LABEL[i]} == "$1" && ${R_BUILD[i]} == "$2" ]] && echo "${vals[i]}"
	done | awk '$1 ~ /^[0-9.]+$/ { v[n++] = $1 } END {
		if (n == 0) { print ""; exit }
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		print (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
if [[ -n $OLD ]]; then
	echo "bench-e2e: $(nproc) CPUs, $(date -u +%FT%TZ), new $NEW_DESC vs old $OLD_DESC, $ROUNDS round(s), $(($(date +%s) - T0)) s in all"
	echo "| run | build | round | rate in (events/s) | delivered/s | p50 / p90 / p99 (ms) | missing | duplicate | server CPU per delivered (ms) | load avg 1/5/15 after |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
else
	echo "bench-e2e: $(nproc) CPUs, $(date -u +%FT%TZ), commit $NEW_DESC, $(($(date +%s) - T0)) s in all"
	echo "| run | rate in (events/s) | delivered/s | p50 / p90 / p99 (ms) | missing | duplicate | server CPU per delivered (ms) | load avg 1/5/15 after |"
	echo "|---|---|---|---|---|---|---|---|"
fi
printf '%s\n' "${ROWS[@]}"
if [[ -n $OLD ]]; then
	echo
	echo "new/old, medians over $ROUNDS round(s) (delivered/s above 1 is better; p50, p99 and CPU below 1):"
	echo "| run | delivered/s | p50 | p99 | server CPU per delivered |"
	echo "|---|---|---|---|---|"
	for spec in $LOADS; do
		label=${spec%%:*}
		printf '| %s | %s | %s | %s | %s |\n' "$label" \
			"$(ratio "$(median "$label" new R_RATE)" "$(median "$label" old R_RATE)")" \
			"$(ratio "$(median "$label" new R_P50)" "$(median "$label" old R_P50)")" \
			"$(ratio "$(median "$label" new R_P99)" "$(median "$label" old R_P99)")" \
			"$(ratio "$(median "$label" new R_CPU)" "$(median "$label" old R_CPU)")"
	done
fi
echo
echo "bench-e2e: where the time goes, per run: mean of each herald_*_seconds histogram over the run (/metrics after minus before; the two gateways summed)"
for b in "${BREAKDOWNS[@]}"; do
	echo
	echo "${b%%$'\n'*}:"
	rows=${b#*$'\n'}
	if [[ -z $rows ]]; then
		echo "(no herald_*_seconds histogram exposed)"
		continue
	fi
	echo "| process | histogram | labels | count | mean (ms) | total (s) |"
	echo "|---|---|---|---|---|---|"
	echo "$rows"
done
if ((${#PROFILES[@]} > 0)); then
	echo
	echo "bench-e2e: CPU profiles ($PROFILE_SECONDS s during $PROFILE_RUN; go tool pprof -top -nodecount=40):"
	printf '  %s\n' "${PROFILES[@]}"
elif [[ $PROFILE == 1 ]]; then
	echo
	echo "bench-e2e: BENCH_PROFILE=1 but no profile was taken (no run labelled $PROFILE_RUN of the new build, or the profiles failed)"
fi
exit "$FAILED"
