#!/usr/bin/env bash
# stack.sh: Herald's integration stack (Kafka, Cassandra, Redis) as plain
# processes on 127.0.0.1, without Docker.
#
#   stack.sh up              start whatever is not running, wait until all are ready
#   stack.sh down [--purge]  stop all three (TERM, then KILL); --purge also deletes data, logs, secrets
#   stack.sh status          state of each component; exit 0 only if all are ready
#   stack.sh logs [NAME] [-f] tail the logs (NAME: kafka, cassandra, redis)
#   stack.sh nodetool ARGS   run Cassandra's nodetool against the local node
#   stack.sh env             print the client settings (.stack/herald.env) as export lines
#
#   stack.sh restart NAME... stop the named components, then up
#   stack.sh kill9 NAME...   SIGKILL the named components (a crash); up starts them again
#
# Cassandra's commit log is durable (STACK_CASSANDRA_COMMITLOG_SYNC=group, window
# STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW=2ms; batch and periodic can be chosen).
#
# Secured by default: Kafka SASL_SSL (SCRAM), Cassandra PasswordAuthenticator + TLS,
# Redis requirepass + TLS, all with a CA and secrets generated under $STACK_DIR.
# STACK_SECURE=0 starts it unsecured (plaintext, no passwords).
#
# Versions and ports: scripts/stack/versions.env. Everything the stack writes
# (jars, configs, data, logs, pid files) lives under $STACK_DIR (default <repo>/.stack).
# See scripts/stack/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
PROG="stack.sh"

# ---------------------------------------------------------------- helpers

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
info() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }

# load_env FILE: KEY=VALUE lines; a variable already set in the environment wins.
load_env() {
	local line key value
	[[ -r $1 ]] || die "cannot read $1"
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$1: cannot parse line: $line"
		key=${BASH_REMATCH[1]}
		value=${BASH_REMATCH[2]}
		if [[ -z ${!key+set} ]]; then
			printf -v "$key" '%s' "$value"
		fi
	done <"$1"
}

load_env "$SCRIPT_DIR/versions.env"
for v in KAFKA_VERSION CASSANDRA_VERSION REDIS_VERSION KAFKA_PORT KAFKA_CONTROLLER_PORT \
	CASSANDRA_PORT CASSANDRA_STORAGE_PORT CASSANDRA_JMX_PORT REDIS_PORT KAFKA_HEAP CASSANDRA_HEAP; do
	[[ -n ${!v:-} ]] || die "$v is not set (scripts/stack/versions.env)"
done

STACK_DIR=${STACK_DIR:-$REPO_ROOT/.stack}
mkdir -p -- "$STACK_DIR" || die "cannot create STACK_DIR $STACK_DIR"
STACK_DIR=$(cd -- "$STACK_DIR" && pwd -P)
# Seconds to wait for all components to become ready, and for one to stop.
STACK_READY_TIMEOUT=${STACK_READY_TIMEOUT:-300}
STACK_STOP_TIMEOUT=${STACK_STOP_TIMEOUT:-60}

LIB_DIR=$STACK_DIR/lib
CONF_DIR=$STACK_DIR/conf
DATA_DIR=$STACK_DIR/data
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
BIN_DIR=$STACK_DIR/bin
SECRETS_DIR=$STACK_DIR/secrets
TLS_DIR=$STACK_DIR/tls
# What a client needs to connect (HERALD_* lines), and the mode the running stack was started in.
ENV_FILE=$STACK_DIR/herald.env
MODE_FILE=$STACK_DIR/mode

STACK_SECURE=${STACK_SECURE:-1}
# Cassandra's commit log sync (group, batch or periodic) and the group window.
STACK_CASSANDRA_COMMITLOG_SYNC=${STACK_CASSANDRA_COMMITLOG_SYNC:-group}
STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW=${STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW:-2ms}
case $STACK_CASSANDRA_COMMITLOG_SYNC in
group | batch | periodic) ;;
*) die "STACK_CASSANDRA_COMMITLOG_SYNC=$STACK_CASSANDRA_COMMITLOG_SYNC: want group (the default), batch or periodic" ;;
esac
[[ $STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW =~ ^[0-9]+ms$ ]] ||
	die "STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW=$STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW: want milliseconds, e.g. 15ms"
[[ $STACK_SECURE == 0 || $STACK_SECURE == 1 ]] || die "STACK_SECURE=$STACK_SECURE: want 1 (secured, the default) or 0 (unsecured)"
# The SASL mechanism clients use; the broker also accepts SCRAM-SHA-256 for the same user.
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
# SimpleSnitch's datacenter name.
CASSANDRA_LOCAL_DC=datacenter1

KAFKA_LIB=$LIB_DIR/kafka-$KAFKA_VERSION
CASSANDRA_LIB=$LIB_DIR/cassandra-$CASSANDRA_VERSION

COMPONENTS=(kafka cassandra redis)

ports_of() {
	case $1 in
	kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ;;
	cassandra) echo "$CASSANDRA_PORT $CASSANDRA_STORAGE_PORT $CASSANDRA_JMX_PORT" ;;
	redis) echo "$REDIS_PORT" ;;
	esac
}
main_port_of() {
	case $1 in
	kafka) echo "$KAFKA_PORT" ;;
	cassandra) echo "$CASSANDRA_PORT" ;;
	redis) echo "$REDIS_PORT" ;;
	esac
}
main_log_of() {
	case $1 in
	kafka) echo "$LOG_DIR/kafka/server.log" ;;
	cassandra) echo "$LOG_DIR/cassandra/system.log" ;;
	redis) echo "$LOG_DIR/redis/redis.log" ;;
	esac
}
stdout_log_of() {
	case $1 in
	kafka | cassandra) echo "$LOG_DIR/$1/stdout.log" ;;
	redis) echo "$LOG_DIR/redis/redis.log" ;;
	esac
}
pidfile_of() { echo "$RUN_DIR/$1.pid"; }
# Marker put on the java command lines, to tell our JVMs from anyone else's.
marker_of() { echo "-Dherald.stack=$1@$STACK_DIR"; }

# tail_logs NAME: the last lines of a component's logs, for error messages:
# its main log, then what the process printed since its last start (JVM errors).
tail_logs() {
	local main out
	main=$(main_log_of "$1")
	out=$(stdout_log_of "$1")
	if [[ -s $main ]]; then
		printf -- '----- last lines of %s -----\n' "$main" >&2
		tail -n 25 -- "$main" >&2
	fi
	if [[ $out != "$main" && -s $out ]]; then
		printf -- '----- %s since the last start -----\n' "$out" >&2
		awk '/^===== .* starting /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$out" | tail -n 25 >&2
	fi
	printf -- '-----\n' >&2
}

# ---------------------------------------------------------------- processes

# alive PID: the process exists and is not a zombie waiting to be reaped. (A JVM
# whose main thread has ended shows as a zombie while its other threads still
# run and hold its ports: that one is alive.)
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local stat tasks
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]] && return 0
	tasks=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	((tasks > 1))
}

# is_ours NAME PID: PID is alive and is this stack's NAME.
is_ours() {
	local name=$1 pid=$2
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	case $name in
	redis)
		# redis-server rewrites its command line; it chdirs to its --dir.
		[[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$DATA_DIR/redis" ]]
		;;
	*)
		local args
		args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		grep -qxF -- "$(marker_of "$name")" <<<"$args"
		;;
	esac
}

# pid_of NAME: prints the pid of this stack's running NAME, or fails.
pid_of() {
	local name=$1 pidfile pid
	pidfile=$(pidfile_of "$name")
	if [[ -r $pidfile ]]; then
		pid=$(<"$pidfile")
		if is_ours "$name" "$pid"; then
			echo "$pid"
			return 0
		fi
	fi
	# No (valid) pid file: look for our marker / redis working directory.
	if [[ $name != redis ]]; then
		for pid in $(pgrep -f -- "$(marker_of "$name")" 2>/dev/null || true); do
			if is_ours "$name" "$pid"; then
				mkdir -p "$RUN_DIR" && echo "$pid" >"$pidfile"
				echo "$pid"
				return 0
			fi
		done
	fi
	return 1
}

# port_user PORT: prints "pid N: command line" of the TCP listener on PORT, "unknown process"
# when the port is taken but ss cannot say by whom; fails when the port is free.
port_user() {
	local port=$1 line pid cmd
	if command -v ss >/dev/null 2>&1; then
		line=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)
		[[ -n $line ]] || return 1
		pid=$(grep -o 'pid=[0-9]*' <<<"$line" | head -n 1 | cut -d= -f2)
		if [[ -n $pid ]]; then
			cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120 | sed 's/ *$//')
			echo "pid $pid: $cmd"
		else
			echo "unknown process"
		fi
		return 0
	fi
	# Without ss: can we connect?
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "unknown process"
		return 0
	fi
	return 1
}

# launch NAME WORKDIR LOGFILE CMD...: start CMD detached (own session, nohup),
# stdin from /dev/null, stdout+stderr appended to LOGFILE, pid into the pid file.
launch() {
	local name=$1 workdir=$2 log=$3 pidfile
	shift 3
	pidfile=$(pidfile_of "$name")
	rm -f -- "$pidfile"
	mkdir -p -- "$RUN_DIR" "$(dirname -- "$log")" "$workdir"
	printf '\n===== %s starting %s =====\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
	(
		exec 9>&- # the up/down lock must not outlive this script
		cd -- "$workdir"
		# shellcheck disable=SC2016 # $$ and $0 are for the inner bash
		exec setsid bash -c 'echo $$ >"$0"; exec nohup "$@"' "$pidfile" "$@" \
			</dev/null >>"$log" 2>&1
	) &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	die "$name: did not start (no pid file $pidfile); see $log"
}

# stop_components NAME...: TERM all of them at once, wait up to STACK_STOP_TIMEOUT s
# for each, then KILL the ones still alive.
stop_components() {
	local name pid i
	local -a names=() pids=()
	for name in "$@"; do
		if pid=$(pid_of "$name"); then
			printf '%-9s stopping (pid %s)\n' "$name" "$pid"
			kill -TERM "$pid" 2>/dev/null || true
			names+=("$name")
			pids+=("$pid")
		else
			rm -f -- "$(pidfile_of "$name")"
			printf '%-9s not running\n' "$name"
		fi
	done
	for i in "${!pids[@]}"; do
		name=${names[i]}
		pid=${pids[i]}
		local waited=0
		while alive "$pid" && ((waited < STACK_STOP_TIMEOUT * 5)); do
			sleep 0.2
			waited=$((waited + 1))
		done
		if alive "$pid"; then
			printf '%-9s still alive after %ss: sending KILL\n' "$name" "$STACK_STOP_TIMEOUT"
			kill -KILL "$pid" 2>/dev/null || true
			for ((waited = 0; waited < 50; waited++)); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
		rm -f -- "$(pidfile_of "$name")"
		printf '%-9s stopped\n' "$name"
	done
}

# ---------------------------------------------------------------- prerequisites

JAVA=""
find_java() {
	if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
		JAVA=$JAVA_HOME/bin/java
	elif command -v java >/dev/null 2>&1; then
		JAVA=$(command -v java)
	else
		die "java not found: install a JDK 17 (Debian: apt-get install -y openjdk-17-jdk-headless) or set JAVA_HOME"
	fi
	local ver major
	ver=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
	major=${ver%%.*}
	[[ $major =~ ^[0-9]+$ ]] || die "cannot tell the version of $JAVA"
	((major >= 17)) || die "$JAVA is Java $ver; Kafka $KAFKA_VERSION needs Java 17 (Cassandra $CASSANDRA_VERSION runs on 11 or 17)"
	((major == 17)) || warn "$JAVA is Java $ver; Cassandra ${CASSANDRA_VERSION%%.*}.x supports Java 11 and 17 only"
}

ensure_redis_server() {
	if ! command -v redis-server >/dev/null 2>&1; then
		local sudo=()
		if ((EUID != 0)); then
			command -v sudo >/dev/null 2>&1 || die "redis-server is not installed and we are not root: run 'apt-get install -y redis-server' as root"
			sudo=(sudo -n)
		fi
		command -v apt-get >/dev/null 2>&1 || die "redis-server is not installed and there is no apt-get: install Redis $REDIS_VERSION yourself"
		info "redis-server not found: installing it with apt-get (Debian's redis-server)"
		"${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q redis-server >&2 ||
			die "apt-get install redis-server failed"
		command -v redis-server >/dev/null 2>&1 || die "redis-server still not found after apt-get install"
		# Where an init system exists, the package starts its own server on
		# 6379; stop it so the port is ours.
		if port_user "$REDIS_PORT" >/dev/null && ! pid_of redis >/dev/null; then
			info "stopping the redis-server service the package started"
			"${sudo[@]}" service redis-server stop >&2 2>&1 || true
		fi
	fi
	local ver
	ver=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
	[[ ${ver%%.*} == "${REDIS_VERSION%%.*}" ]] ||
		warn "redis-server is version ${ver:-unknown}, versions.env pins Redis $REDIS_VERSION"
}

# fetch_jars NAME POMDIR PROPERTY VERSION DEST: assemble DEST from Maven (cached in ~/.m2).
fetch_jars() {
	local name=$1 pomdir=$2 prop=$3 version=$4 dest=$5
	[[ -f $dest/.complete ]] && return 0
	command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (apt-get install -y maven) to fetch the $name jars"
	local tmp=$dest.tmp.$$ args
	rm -rf -- "$tmp"
	args=(-B -q -f "$pomdir/pom.xml" dependency:copy-dependencies
		"-D$prop=$version" -DincludeScope=runtime -DoutputDirectory="$tmp")
	info "$name $version: assembling jars into $dest"
	# Offline first (a warm ~/.m2 needs no network), then online.
	if ! mvn -o "${args[@]}" >/dev/null 2>&1; then
		rm -rf -- "$tmp"
		info "$name $version: downloading from Maven Central (cached in ~/.m2)"
		# (Maven 3.8 prints stray colour resets even in batch mode: strip them.)
		mvn "${args[@]}" 2>&1 | sed $'s/\e\\[[0-9;]*m//g' >&2 ||
			die "$name: mvn dependency:copy-dependencies failed (see above)"
	fi
	local n
	n=$(find "$tmp" -maxdepth 1 -name '*.jar' | wc -l)
	((n > 0)) || die "$name: Maven copied no jars into $tmp"
	echo "$n" >"$tmp/.complete"
	rm -rf -- "$dest"
	mv -- "$tmp" "$dest"
	info "$name $version: $n jars, $(du -sh -- "$dest" | cut -f1)"
}

# The Go probe (scripts/stack/probe) built once into $BIN_DIR; rebuilt when its source changes.
PROBE=""
build_probe() {
	local bin=$BIN_DIR/probe newer
	# Rebuilt when its source, or a package of ours it uses, is newer.
	newer=$(find "$SCRIPT_DIR/probe" "$REPO_ROOT/internal/stacktest" "$REPO_ROOT/internal/conn" \
		-name '*.go' ! -name '*_test.go' -newer "$bin" 2>/dev/null | head -n 1 || true)
	if [[ -x $bin && -z $newer ]]; then
		PROBE=$bin
		return 0
	fi
	if command -v go >/dev/null 2>&1; then
		mkdir -p -- "$BIN_DIR"
		if (cd -- "$REPO_ROOT" && go build -o "$bin.tmp" ./scripts/stack/probe) >"$BIN_DIR/probe-build.log" 2>&1; then
			mv -f -- "$bin.tmp" "$bin"
			PROBE=$bin
			return 0
		fi
		warn "could not build the readiness probe (see $BIN_DIR/probe-build.log)"
	else
		warn "go not found: cannot build the readiness probe"
	fi
	if [[ -x $bin ]]; then
		warn "using the previously built probe $bin"
		PROBE=$bin
	else
		warn "falling back to TCP-only readiness checks"
	fi
}

# probe_one NAME [TIMEOUT]: prints one status line; succeeds when NAME is ready.
probe_one() {
	local name=$1 timeout=${2:-3s} port
	port=$(main_port_of "$name")
	if [[ -n $PROBE ]]; then
		local -a args=(-timeout "$timeout")
		[[ -r $ENV_FILE ]] && args+=(-env "$ENV_FILE")
		if [[ $name == cassandra && $(cat -- "$MODE_FILE" 2>/dev/null) == secure ]]; then
			# Lets the probe create the "herald" role on first start.
			args+=(-cassandra-admin "$SECRETS_DIR/cassandra-admin")
		fi
		"$PROBE" "${args[@]}" "-$name" "127.0.0.1:$port"
		return
	fi
	if [[ $(cat -- "$MODE_FILE" 2>/dev/null) == secure ]]; then
		printf '%-9s not-ready 127.0.0.1:%s: the secured stack needs the Go probe (see %s)\n' "$name" "$port" "$BIN_DIR/probe-build.log"
		return 1
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		printf '%-9s ready     127.0.0.1:%s (tcp only)\n' "$name" "$port"
	else
		printf '%-9s not-ready 127.0.0.1:%s: connection refused\n' "$name" "$port"
		return 1
	fi
}

# ---------------------------------------------------------------- security

secure() { [[ $STACK_SECURE == 1 ]]; }
want_mode() { if secure; then echo secure; else echo plain; fi; }

# secret NAME: prints the secret NAME, generating it (random, 0600) the first time.
# Secrets go into config files and herald.env, never onto a command line we log.
secret() {
	local f=$SECRETS_DIR/$1
	if [[ ! -s $f ]]; then
		(
			umask 077
			mkdir -p -- "$SECRETS_DIR"
			openssl rand -hex 24 >"$f.tmp.$$" && mv -f -- "$f.tmp.$$" "$f"
		) || die "cannot write the secret $f"
	fi
	printf '%s' "$(<"$f")"
}

require_openssl() {
	command -v openssl >/dev/null 2>&1 || die "openssl not found: the secured stack generates its CA and certificates with it (apt-get install -y openssl), or run with STACK_SECURE=0"
}

# issue_cert NAME CN EXTENSIONS: key NAME.key and certificate NAME.pem signed by the stack CA.
issue_cert() {
	local name=$1 cn=$2 ext=$3 d=$TLS_DIR
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/$name.key" -out "$d/$name.csr" -subj "/O=Herald stack/CN=$cn" 2>>"$d/openssl.log" &&
		printf '%b' "$ext" >"$d/$name.ext" &&
		openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
			-days 825 -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>>"$d/openssl.log" ||
		die "tls: cannot issue the $name certificate (see $d/openssl.log)"
	rm -f -- "$d/$name.csr" "$d/$name.ext"
}

# ensure_tls: the stack CA, a server certificate for 127.0.0.1/localhost (PEM for
# Redis, PKCS12 for the JVMs) and a client certificate, generated once under $TLS_DIR.
ensure_tls() {
	require_openssl
	local d=$TLS_DIR
	[[ -s $d/ca.pem && -s $d/server.pem && -s $d/server.p12 && -s $d/client.pem ]] && return 0
	info "tls: generating the stack CA and certificates in $d"
	(umask 077 && mkdir -p -- "$d")
	(
		umask 077
		if [[ ! -s $d/ca.pem || ! -s $d/ca.key ]]; then
			openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
				-keyout "$d/ca.key" -out "$d/ca.pem" -days 3650 -subj "/O=Herald stack/CN=Herald stack CA" \
				-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
				2>>"$d/openssl.log" || exit 1
			rm -f -- "$d/server.pem" "$d/client.pem"
		fi
		[[ -s $d/server.pem ]] || issue_cert server localhost \
			'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
		[[ -s $d/client.pem ]] || issue_cert client herald \
			'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
		# The JVMs' keystore: the server key and its chain, with a random password.
		openssl pkcs12 -export -name server -in "$d/server.pem" -inkey "$d/server.key" -certfile "$d/ca.pem" \
			-passout "file:$SECRETS_DIR/keystore" -out "$d/server.p12" 2>>"$d/openssl.log" || exit 1
	) || die "tls: generating the certificates failed (see $d/openssl.log)"
	chmod 0644 -- "$d/ca.pem" "$d/server.pem" "$d/client.pem"
}

# write_env_file: $ENV_FILE, the HERALD_* settings a client needs (0600: it holds passwords).
write_env_file() {
	local tmp=$ENV_FILE.tmp.$$
	(
		umask 077
		{
			echo "HERALD_BROKERS=127.0.0.1:$KAFKA_PORT"
			if secure; then
				echo "HERALD_KAFKA_TLS=true"
				echo "HERALD_KAFKA_TLS_CA=$TLS_DIR/ca.pem"
				echo "HERALD_KAFKA_TLS_CERT=$TLS_DIR/client.pem"
				echo "HERALD_KAFKA_TLS_KEY=$TLS_DIR/client.key"
				echo "HERALD_KAFKA_SASL=$KAFKA_SASL_MECHANISM"
				echo "HERALD_KAFKA_USER=herald"
				echo "HERALD_KAFKA_PASSWORD=$(secret kafka-herald)"
			else
				echo "HERALD_KAFKA_TLS=false"
			fi
			echo "HERALD_CASSANDRA_HOSTS=127.0.0.1:$CASSANDRA_PORT"
			if secure; then
				echo "HERALD_CASSANDRA_USER=herald"
				echo "HERALD_CASSANDRA_PASSWORD=$(secret cassandra-herald)"
				echo "HERALD_CASSANDRA_TLS=true"
				echo "HERALD_CASSANDRA_TLS_CA=$TLS_DIR/ca.pem"
			else
				echo "HERALD_CASSANDRA_TLS=false"
			fi
			echo "HERALD_CASSANDRA_LOCAL_DC=$CASSANDRA_LOCAL_DC"
			if secure; then
				echo "HERALD_REDIS_URL=rediss://127.0.0.1:$REDIS_PORT/0"
				echo "HERALD_REDIS_PASSWORD=$(secret redis)"
				echo "HERALD_REDIS_TLS_CA=$TLS_DIR/ca.pem"
			else
				echo "HERALD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
			fi
		} >"$tmp"
	) || die "cannot write $tmp"
	mv -f -- "$tmp" "$ENV_FILE"
}

# prepare_security: secrets, certificates and herald.env for the wanted mode.
prepare_security() {
	if secure; then
		require_openssl
		local s
		for s in kafka-herald kafka-admin cassandra-herald cassandra-admin redis keystore; do
			secret "$s" >/dev/null
		done
		ensure_tls
	fi
	write_env_file
}

# switch_mode: when the stack last ran in the other mode, stop what runs so
# that 'up' restarts it with the new configs.
switch_mode() {
	local want prev=""
	want=$(want_mode)
	[[ -r $MODE_FILE ]] && prev=$(<"$MODE_FILE")
	# Stacks from before the secured mode have data but no mode file.
	[[ -z $prev && -e $DATA_DIR/kafka/meta.properties ]] && prev=plain
	if [[ -n $prev && $prev != "$want" ]]; then
		info "switching the stack from $prev to $want: restarting whatever runs, with new configs"
		stop_components "${COMPONENTS[@]}" >&2
	fi
	echo "$want" >"$MODE_FILE"
}

# ---------------------------------------------------------------- configuration

write_kafka_config() {
	local conf=$CONF_DIR/kafka
	mkdir -p -- "$conf" "$DATA_DIR/kafka" "$LOG_DIR/kafka"
	local listeners
	if secure; then
		# Clients and the broker itself (inter-broker, as the super user "admin")
		# authenticate with SCRAM over TLS. Client certificates are requested, not
		# required: one signed by the stack CA is checked, none is fine too.
		listeners="listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret kafka-admin)\";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/server.p12
ssl.keystore.password=$(secret keystore)
ssl.key.password=$(secret keystore)
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=requested
# ACLs on, everything allowed while none is defined; admin may do anything.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
super.users=User:admin"
	else
		listeners="listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	fi
	(umask 077 && cat >"$conf/server.properties" <<EOF
# Generated by scripts/stack/stack.sh ($(want_mode)); rewritten at every 'up'.
# Single combined KRaft node: broker + controller, static quorum of one voter.
# The controller listener stays plaintext, on loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
$listeners
log.dirs=$DATA_DIR/kafka

# One node: every internal topic has one replica.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests create their topics explicitly and want groups to start at once.
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.retention.hours=72
log.segment.bytes=268435456
EOF
	) || die "kafka: cannot write $conf/server.properties"
	cat >"$conf/log4j2.properties" <<'EOF'
# Generated by scripts/stack/stack.sh: Kafka broker logging.
status = warn
name = herald-stack-kafka

appender.server.type = RollingFile
appender.server.name = SERVER
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.server.ref = SERVER

logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
	cat >"$conf/log4j2-tools.properties" <<'EOF'
# Generated by scripts/stack/stack.sh: logging of Kafka's command-line tools.
status = warn
name = herald-stack-kafka-tools
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

write_cassandra_config() {
	local conf=$CONF_DIR/cassandra data=$DATA_DIR/cassandra
	mkdir -p -- "$conf/triggers" "$data"/{data,commitlog,saved_caches,hints,cdc_raw} "$LOG_DIR/cassandra"
	local security
	if secure; then
		# Password authentication (the roles live in system_auth; probe creates
		# "herald" and gives the default superuser "cassandra" a random password),
		# no authorization (AllowAllAuthorizer), client TLS with the stack's
		# server certificate. Client certificates are not asked for (Cassandra
		# 5.0 has no "optional" client auth on the native port).
		security="authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
client_encryption_options:
  enabled: true
  optional: false
  keystore: $TLS_DIR/server.p12
  keystore_password: $(secret keystore)
  store_type: PKCS12
  require_client_auth: false"
	else
		security="authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer"
	fi
	local commitlog
	case $STACK_CASSANDRA_COMMITLOG_SYNC in
	group) commitlog="commitlog_sync: group
commitlog_sync_group_window: $STACK_CASSANDRA_COMMITLOG_GROUP_WINDOW" ;;
	batch) commitlog="commitlog_sync: batch" ;;
	periodic) commitlog="commitlog_sync: periodic
commitlog_sync_period: 10000ms" ;;
	esac
	(umask 077 && cat >"$conf/cassandra.yaml" <<EOF
# Generated by scripts/stack/stack.sh ($(want_mode)); rewritten at every 'up'.
# One Cassandra node on 127.0.0.1 for development and integration tests.
cluster_name: herald-dev
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch

seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$CASSANDRA_STORAGE_PORT"

listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true

data_file_directories:
  - $data/data
commitlog_directory: $data/commitlog
saved_caches_directory: $data/saved_caches
hints_directory: $data/hints
cdc_raw_directory: $data/cdc_raw

# Durable commit log: a write is acknowledged only once it is on disk
# (group: synced at most every window, batch: at every write). With 'periodic' (Cassandra's default, synced every 10 s)
# a kill -9 loses writes already acknowledged, and Herald then reuses
# their seqs. STACK_CASSANDRA_COMMITLOG_SYNC picks group (default), batch
# or periodic (only to measure or reproduce that loss); see docs/OPERATIONS.md.
$commitlog
commitlog_segment_size: 32MiB

# Sized for 2 cores and a 1 GiB heap.
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_materialized_view_writes: 8
concurrent_compactors: 1
native_transport_max_threads: 32
memtable_allocation_type: heap_buffers
disk_optimization_strategy: ssd

# A throwaway dev node: no snapshots on TRUNCATE/DROP (they make tests slow
# and fill the disk), no backups.
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false

# Single node, nothing to hand off or repair.
hinted_handoff_enabled: false

$security
EOF
	) || die "cassandra: cannot write $conf/cassandra.yaml"
	cat >"$conf/logback.xml" <<'EOF'
<!-- Generated by scripts/stack/stack.sh: Cassandra logging into $STACK_DIR/logs/cassandra. -->
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>${cassandra.logdir}/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>50MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
  </root>
</configuration>
EOF
	write_cassandra_tools_logback
}

# Logging of Cassandra's command-line tools (nodetool): warnings to stderr.
write_cassandra_tools_logback() {
	mkdir -p -- "$CONF_DIR/cassandra"
	cat >"$CONF_DIR/cassandra/logback-tools.xml" <<'EOF'
<!-- Generated by scripts/stack/stack.sh: logging of Cassandra's tools. -->
<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder>
      <pattern>%-5level %date{ISO8601} %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="WARN">
    <appender-ref ref="STDERR"/>
  </root>
</configuration>
EOF
}

# ---------------------------------------------------------------- java command lines

kafka_java_opts() {
	KAFKA_JAVA=("$JAVA" "-Xms256m" "-Xmx$KAFKA_HEAP"
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
		-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError
		-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
		"-Dkafka.logs.dir=$LOG_DIR/kafka"
		-cp "$KAFKA_LIB/*")
}

# scram_stamp: a digest of the SCRAM credentials the storage must have been formatted with.
scram_stamp() {
	printf 'herald:%s\nadmin:%s\n' "$(secret kafka-herald)" "$(secret kafka-admin)" | sha256sum | cut -d' ' -f1
}

format_kafka_storage() {
	local stamp="" stampfile=$DATA_DIR/kafka/.herald-scram
	if secure; then
		stamp=$(scram_stamp)
		# SCRAM users exist only when created at format time: storage formatted
		# unsecured (or with other secrets) is wiped and formatted again.
		if [[ -f $DATA_DIR/kafka/meta.properties && $(cat -- "$stampfile" 2>/dev/null) != "$stamp" ]]; then
			info "kafka: $DATA_DIR/kafka was formatted without the current SCRAM credentials: wiping it (its topics and offsets are lost)"
			rm -rf -- "$DATA_DIR/kafka"
			mkdir -p -- "$DATA_DIR/kafka"
		fi
	fi
	[[ -f $DATA_DIR/kafka/meta.properties ]] && return 0
	local id
	local -a scram=()
	if secure; then
		# (StorageTool takes them only as arguments: they are visible in ps for
		# the second the tool runs, and are not logged.)
		scram=(--add-scram "SCRAM-SHA-512=[name=herald,password=$(secret kafka-herald)]"
			--add-scram "SCRAM-SHA-256=[name=herald,password=$(secret kafka-herald)]"
			--add-scram "SCRAM-SHA-512=[name=admin,password=$(secret kafka-admin)]")
	fi
	id=$("${KAFKA_JAVA[@]}" "-Dlog4j2.configurationFile=$CONF_DIR/kafka/log4j2-tools.properties" \
		kafka.tools.StorageTool random-uuid) || die "kafka: StorageTool random-uuid failed"
	id=$(tail -n 1 <<<"$id")
	info "kafka: formatting $DATA_DIR/kafka (cluster id $id)"
	# The format log lists the SCRAM records (salted keys): keep it private.
	(umask 077 && : >>"$LOG_DIR/kafka/format.log")
	"${KAFKA_JAVA[@]}" "-Dlog4j2.configurationFile=$CONF_DIR/kafka/log4j2-tools.properties" \
		kafka.tools.StorageTool format --ignore-formatted "${scram[@]}" \
		--cluster-id "$id" --config "$CONF_DIR/kafka/server.properties" >>"$LOG_DIR/kafka/format.log" 2>&1 ||
		{
			tail -n 20 "$LOG_DIR/kafka/format.log" >&2
			die "kafka: StorageTool format failed (log: $LOG_DIR/kafka/format.log)"
		}
	[[ -z $stamp ]] || echo "$stamp" >"$stampfile"
}

start_kafka() {
	write_kafka_config
	kafka_java_opts
	format_kafka_storage
	launch kafka "$DATA_DIR/kafka" "$(stdout_log_of kafka)" \
		"${KAFKA_JAVA[@]}" "$(marker_of kafka)" \
		"-Dlog4j2.configurationFile=$CONF_DIR/kafka/log4j2.properties" \
		kafka.Kafka "$CONF_DIR/kafka/server.properties"
}

# The JDK 17 module flags of Cassandra's conf/jvm17-server.options: Cassandra
# (jamm, chronicle, netty, its own internals) reaches into JDK internals.
cassandra_jdk17_opts() {
	local m
	CASSANDRA_JDK17=(-Djdk.attach.allowAttachSelf=true)
	for m in java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch \
		java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
		java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref \
		jdk.unsupported/sun.misc jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
		CASSANDRA_JDK17+=(--add-exports "$m=ALL-UNNAMED")
	done
	for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
		java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
		java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal \
		java.base/sun.nio.ch java.base/java.io java.base/java.nio java.base/java.lang.reflect \
		jdk.compiler/com.sun.tools.javac java.base/java.lang java.base/java.util \
		java.base/java.util.concurrent java.base/java.util.concurrent.atomic java.base/java.net \
		java.base/java.math; do
		CASSANDRA_JDK17+=(--add-opens "$m=ALL-UNNAMED")
	done
}

cassandra_java_cmd() {
	cassandra_jdk17_opts
	local jamm
	jamm=$(find "$CASSANDRA_LIB" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)
	CASSANDRA_JAVA=("$JAVA" "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" -Xss256k
		-XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
		-XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
		-XX:+UseTLAB -XX:+ResizeTLAB -XX:+UseNUMA -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
		-XX:StringTableSize=1000003
		"${CASSANDRA_JDK17[@]}"
		-Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true
		-Dio.netty.allocator.maxOrder=11
		-Djava.net.preferIPv4Stack=true -Djava.awt.headless=true
		${jamm:+"-javaagent:$jamm"}
		"-Dcassandra.config=file://$CONF_DIR/cassandra/cassandra.yaml"
		"-Dlogback.configurationFile=file://$CONF_DIR/cassandra/logback.xml"
		"-Dcassandra.logdir=$LOG_DIR/cassandra"
		"-Dcassandra.storagedir=$DATA_DIR/cassandra"
		"-Dcassandra.triggers_dir=$CONF_DIR/cassandra/triggers"
		-Dcassandra-foreground=yes
		"-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT"
		-Dcom.sun.management.jmxremote.authenticate=false
		# Fast start of a lone seed: nothing to gossip with, nobody to wait for.
		-Dcassandra.skip_wait_for_gossip_to_settle=0
		-Dcassandra.ring_delay_ms=100
		-Dcassandra.superuser_setup_delay_ms=0
		-cp "$CONF_DIR/cassandra:$CASSANDRA_LIB/*")
}

start_cassandra() {
	write_cassandra_config
	cassandra_java_cmd
	launch cassandra "$DATA_DIR/cassandra" "$(stdout_log_of cassandra)" \
		"${CASSANDRA_JAVA[@]}" "$(marker_of cassandra)" org.apache.cassandra.service.CassandraDaemon
}

write_redis_config() {
	local dir=$DATA_DIR/redis conf=$CONF_DIR/redis pidfile security
	pidfile=$(pidfile_of redis)
	mkdir -p -- "$conf"
	if secure; then
		# TLS only (no plaintext port), the default user's password; client
		# certificates are not asked for.
		security="port 0
tls-port $REDIS_PORT
tls-cert-file $TLS_DIR/server.pem
tls-key-file $TLS_DIR/server.key
tls-ca-cert-file $TLS_DIR/ca.pem
tls-auth-clients no
requirepass $(secret redis)"
	else
		security="port $REDIS_PORT"
	fi
	(umask 077 && cat >"$conf/redis.conf" <<EOF
# Generated by scripts/stack/stack.sh ($(want_mode)); rewritten at every 'up'.
$security
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile $pidfile
dir $dir
logfile $LOG_DIR/redis/redis.log
# Ephemeral on purpose: no RDB snapshots, no AOF.
save ""
appendonly no
EOF
	) || die "redis: cannot write $conf/redis.conf"
}

start_redis() {
	local dir=$DATA_DIR/redis pidfile
	pidfile=$(pidfile_of redis)
	mkdir -p -- "$dir" "$LOG_DIR/redis" "$RUN_DIR"
	rm -f -- "$pidfile"
	write_redis_config
	(exec 9>&- && cd -- "$dir" && redis-server "$CONF_DIR/redis/redis.conf") </dev/null || {
		tail_logs redis
		die "redis: redis-server failed to start"
	}
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	tail_logs redis
	die "redis: no pid file $pidfile after start"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local t0=$SECONDS name port user pid
	find_java
	ensure_redis_server
	switch_mode
	prepare_security

	# Preflight: which components run already, and are the others' ports free?
	local -a to_start=() running=()
	local conflicts=""
	for name in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$name"); then
			running+=("$name")
			continue
		fi
		rm -f -- "$(pidfile_of "$name")"
		for port in $(ports_of "$name"); do
			if user=$(port_user "$port"); then
				conflicts+=$'\n'"  port $port (needed by $name) is taken by $user"
			fi
		done
		to_start+=("$name")
	done
	[[ -z $conflicts ]] || die "cannot start: ports in use:$conflicts"$'\n'"Stop those processes, or change the ports (env vars or scripts/stack/versions.env)."
	((${#running[@]} == 0)) || info "already running: ${running[*]}"

	local need_kafka=0 need_cassandra=0
	for name in "${to_start[@]}"; do
		case $name in kafka) need_kafka=1 ;; cassandra) need_cassandra=1 ;; esac
	done
	((need_kafka)) && fetch_jars kafka "$SCRIPT_DIR/kafka" kafka.version "$KAFKA_VERSION" "$KAFKA_LIB"
	((need_cassandra)) && fetch_jars cassandra "$SCRIPT_DIR/cassandra" cassandra.version "$CASSANDRA_VERSION" "$CASSANDRA_LIB"
	build_probe

	for name in "${to_start[@]}"; do
		info "starting $name"
		"start_$name"
	done

	# Readiness: poll until every component answers, failing fast if one dies.
	local -a pending=("${COMPONENTS[@]}") still=()
	local deadline=$((SECONDS + STACK_READY_TIMEOUT)) out
	while ((${#pending[@]} > 0)); do
		still=()
		for name in "${pending[@]}"; do
			if ! pid=$(pid_of "$name"); then
				tail_logs "$name"
				die "$name exited during startup; logs: $(main_log_of "$name") $(stdout_log_of "$name")"
			fi
			if out=$(probe_one "$name" 3s); then
				port=$(main_port_of "$name")
				out=${out#*"127.0.0.1:$port"}
				info "$name ready after $((SECONDS - t0))s (pid $pid, 127.0.0.1:$port)${out:+:$out}"
			else
				still+=("$name")
			fi
		done
		pending=("${still[@]+"${still[@]}"}")
		((${#pending[@]} == 0)) && break
		if ((SECONDS >= deadline)); then
			for name in "${pending[@]}"; do
				probe_one "$name" 3s >&2 || true
				tail_logs "$name"
			done
			die "not ready after ${STACK_READY_TIMEOUT}s: ${pending[*]} (raise STACK_READY_TIMEOUT, or see the logs above)"
		fi
		sleep 1
	done
	info "stack ready in $((SECONDS - t0))s ($(want_mode)): kafka 127.0.0.1:$KAFKA_PORT, cassandra 127.0.0.1:$CASSANDRA_PORT, redis 127.0.0.1:$REDIS_PORT (STACK_DIR=$STACK_DIR)"
	info "client settings: $ENV_FILE (load them with: eval \"\$(bash scripts/stack/stack.sh env)\")"
}

cmd_down() {
	local purge=0 arg name
	for arg in "$@"; do
		case $arg in
		--purge) purge=1 ;;
		*) die "down: unknown argument $arg (usage: stack.sh down [--purge])" ;;
		esac
	done
	stop_components "${COMPONENTS[@]}"
	if ((purge)); then
		rm -rf -- "$DATA_DIR" "$LOG_DIR" "$RUN_DIR" "$CONF_DIR" "$SECRETS_DIR" "$TLS_DIR" "$ENV_FILE" "$MODE_FILE"
		info "purged data, logs, configs, secrets and certificates under $STACK_DIR (kept the jars in $LIB_DIR)"
	fi
}

# component_args CMD NAME...: the names, checked; none means all three.
component_args() {
	local cmd=$1 name
	shift
	for name in "$@"; do
		case $name in
		kafka | cassandra | redis) ;;
		*) die "$cmd: unknown component $name (kafka, cassandra or redis)" ;;
		esac
	done
}

# cmd_restart NAME...: stop the named components (TERM, then KILL), then up.
cmd_restart() {
	(($# > 0)) || die "restart: name the components (kafka, cassandra, redis)"
	component_args restart "$@"
	stop_components "$@"
	cmd_up
}

# cmd_kill9 NAME...: a crash: SIGKILL the named components, no clean shutdown,
# and wait until they are gone. 'up' (or 'restart') starts them again.
cmd_kill9() {
	(($# > 0)) || die "kill9: name the components (kafka, cassandra, redis)"
	component_args kill9 "$@"
	local name pid i port
	for name in "$@"; do
		if pid=$(pid_of "$name"); then
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 100; i++)); do
				alive "$pid" || break
				sleep 0.1
			done
			if alive "$pid"; then
				die "$name: pid $pid still alive 10s after SIGKILL"
			fi
			printf '%-9s killed (pid %s, SIGKILL)\n' "$name" "$pid"
		else
			printf '%-9s not running\n' "$name"
		fi
		rm -f -- "$(pidfile_of "$name")"
		# A killed JVM holds its ports for a moment after its pid is gone
		# (whoever killed it): wait until up can bind them again.
		for port in $(ports_of "$name"); do
			for ((i = 0; i < 300; i++)); do
				port_user "$port" >/dev/null || break
				sleep 0.1
			done
			if port_user "$port" >/dev/null; then
				die "$name: port $port still taken 30s after the kill"
			fi
		done
	done
}

cmd_status() {
	local name pid port out state all=0 detail
	build_probe 2>/dev/null
	printf '%-9s %-9s %-8s %-6s %s\n' COMPONENT STATE PID PORT DETAIL
	for name in "${COMPONENTS[@]}"; do
		port=$(main_port_of "$name")
		detail=""
		if pid=$(pid_of "$name"); then
			if out=$(probe_one "$name" 3s 2>&1); then
				state=ready
				detail=${out#*"127.0.0.1:$port"}
			else
				state=running
				all=1
				detail="not ready:${out#*"127.0.0.1:$port:"}"
			fi
		else
			pid=-
			state=stopped
			all=1
			if out=$(port_user "$port"); then
				detail="port taken by another process: $out"
			fi
		fi
		printf '%-9s %-9s %-8s %-6s %s\n' "$name" "$state" "$pid" "$port" "${detail# }"
	done
	printf 'STACK_DIR=%s\n' "$STACK_DIR"
	return "$all"
}

# cmd_env: herald.env as export lines, for eval "$(stack.sh env)".
cmd_env() {
	(($# == 0)) || die "env: takes no arguments"
	[[ -r $ENV_FILE ]] || die "no $ENV_FILE yet: run 'stack.sh up' first"
	local line key value
	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
		key=${BASH_REMATCH[1]}
		value=${BASH_REMATCH[2]}
		printf 'export %s=%q\n' "$key" "$value"
	done <"$ENV_FILE"
}

cmd_logs() {
	local follow=0 names=() arg name files=()
	for arg in "$@"; do
		case $arg in
		-f | --follow) follow=1 ;;
		kafka | cassandra | redis) names+=("$arg") ;;
		*) die "logs: unknown argument $arg (usage: stack.sh logs [kafka|cassandra|redis] [-f])" ;;
		esac
	done
	((${#names[@]} > 0)) || names=("${COMPONENTS[@]}")
	for name in "${names[@]}"; do
		for arg in "$(main_log_of "$name")" "$(stdout_log_of "$name")"; do
			[[ -f $arg ]] && [[ " ${files[*]-} " != *" $arg "* ]] && files+=("$arg")
		done
	done
	((${#files[@]} > 0)) || die "no logs yet under $LOG_DIR"
	if ((follow)); then
		exec tail -n 40 -F -- "${files[@]}"
	fi
	tail -n 40 -- "${files[@]}"
}

cmd_nodetool() {
	find_java
	[[ -f $CASSANDRA_LIB/.complete ]] || die "the Cassandra jars are not assembled yet: run 'stack.sh up' first"
	cassandra_jdk17_opts
	write_cassandra_tools_logback
	exec "$JAVA" -Xmx256m "${CASSANDRA_JDK17[@]}" \
		"-Dlogback.configurationFile=file://$CONF_DIR/cassandra/logback-tools.xml" \
		-Dcassandra.storagedir="$DATA_DIR/cassandra" -cp "$CASSANDRA_LIB/*" \
		org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$CASSANDRA_JMX_PORT" "$@"
}

usage() {
	cat <<EOF
usage: $PROG COMMAND
  up               start Kafka $KAFKA_VERSION, Cassandra $CASSANDRA_VERSION and Redis $REDIS_VERSION
                   on 127.0.0.1 (whatever is not running yet) and wait until all are ready
  down [--purge]   stop them; --purge also deletes data, logs, configs, secrets and certificates (keeps the jars)
  restart NAME...  stop the named components (kafka, cassandra, redis), then up
  kill9 NAME...    SIGKILL the named components (a crash, for tests); up starts them again
  status           state of each component; exit 0 only if all are ready
  logs [NAME] [-f] show (or follow) the logs; NAME: kafka, cassandra or redis
  nodetool ARGS    Cassandra's nodetool against the local node (e.g. nodetool status)
  env              print the client settings ($ENV_FILE) as export lines
Secured by default (SASL_SSL, passwords, TLS); STACK_SECURE=0 starts it unsecured.
STACK_DIR=$STACK_DIR
EOF
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up | down | restart | kill9)
		# One up/down/restart/kill9 at a time per STACK_DIR.
		exec 9>"$STACK_DIR/.lock"
		if ! flock -n 9; then
			info "waiting for another stack.sh up/down on $STACK_DIR to finish..."
			flock -w 600 9 || die "another stack.sh up/down still holds $STACK_DIR/.lock after 600s"
		fi
		"cmd_$cmd" "$@"
		;;
	status) cmd_status "$@" ;;
	logs) cmd_logs "$@" ;;
	nodetool) cmd_nodetool "$@" ;;
	env) cmd_env "$@" ;;
	-h | --help | help) usage ;;
	"") usage >&2; exit 2 ;;
	*) usage >&2; die "unknown command: $cmd" ;;
	esac
}

main "$@"
