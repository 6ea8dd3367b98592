# Sourced by the bench scripts: stopping the processes a script started.

# stop_pids SECONDS PID...: SIGTERM to each, then for each up to SECONDS
# for it to exit, then SIGKILL; reaps them. Only the given pids.
stop_pids() {
	local secs=$1 pid
	shift
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "$@"; do
		for _ in $(seq 1 $((secs * 5))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
