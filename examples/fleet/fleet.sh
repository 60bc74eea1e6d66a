#!/bin/sh
# A portcullis fleet on loopback: HAProxy (TCP, PROXY protocol v2, SMTP and
# implicit TLS passed through), one Redis for the shared penalty, one
# PostgreSQL for the users, and three portcullis nodes. Everything is
# Debian's (tests/setup.sh installs haproxy, redis-server, postgresql) and
# runs privately under $FLEET_DIR; nothing is installed or started system-wide.
#
#   fleet.sh up                 start everything (users alice/secret, bob/secret, load0..load99/secret)
#   fleet.sh down               stop everything
#   fleet.sh status             HAProxy's view of the nodes
#   fleet.sh kill N             kill -9 node N (returns once it is gone)
#   fleet.sh start N            start node N (again)
#   fleet.sh restart N          drain N in HAProxy, SIGTERM (its sessions get 421), start it again
#   fleet.sh reload N           SIGHUP node N (plugins and checkers re-read)
#   fleet.sh pg-stop | pg-start stop or start PostgreSQL
#   fleet.sh pg-restart         restart PostgreSQL (fast shutdown: its connections end)
#   fleet.sh psql SQL           run one statement in the users' database
#   fleet.sh redis ARG...       run one command in the penalty store (redis-cli)
#
# Environment (defaults in brackets): FLEET_DIR [/tmp/portcullis-fleet],
# PORTCULLIS [portcullis on PATH, else target/release/portcullis],
# FLEET_SMTP_PORT [2525], FLEET_SMTPS_PORT [4650], FLEET_REDIS_PORT [6390],
# FLEET_PG_PORT [5440], FLEET_NODE_BASE [2600] (node N listens on
# BASE+10N+1 SMTP, +2 SMTPS, +3 echo, +4 metrics), FLEET_NODE_ARGS (more
# flags for every node, e.g. "--auth-failure-delay 0s"), FLEET_PG_POOL [2]
# (PostgreSQL connections per node at most), FLEET_WAIT [60] (seconds a
# start may take before fleet.sh gives up).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
FLEET_DIR=${FLEET_DIR:-/tmp/portcullis-fleet}
FLEET_SMTP_PORT=${FLEET_SMTP_PORT:-2525}
FLEET_SMTPS_PORT=${FLEET_SMTPS_PORT:-4650}
FLEET_REDIS_PORT=${FLEET_REDIS_PORT:-6390}
FLEET_PG_PORT=${FLEET_PG_PORT:-5440}
FLEET_NODE_BASE=${FLEET_NODE_BASE:-2600}
FLEET_NODE_ARGS=${FLEET_NODE_ARGS:-}
FLEET_WAIT=${FLEET_WAIT:-60}
if [ -z "${PORTCULLIS:-}" ]; then
    PORTCULLIS=$(command -v portcullis || echo "$here/../../target/release/portcullis")
fi
export FLEET_DIR FLEET_SMTP_PORT FLEET_SMTPS_PORT
for n in 1 2 3; do
    export "FLEET_NODE${n}_SMTP=$((FLEET_NODE_BASE + 10 * n + 1))"
    export "FLEET_NODE${n}_SMTPS=$((FLEET_NODE_BASE + 10 * n + 2))"
done

die() { echo "fleet.sh: $*" >&2; exit 1; }

need() {
    [ -x "$1" ] || die "$1 is missing: run \`sh tests/setup.sh\` as root first"
}

pg_bin() {
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    die "PostgreSQL is missing: run \`sh tests/setup.sh\` as root first"
}

# PostgreSQL refuses to run as root: as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Waits until something listens on 127.0.0.1:$1 (or on every address), at
# most $FLEET_WAIT seconds: a loaded machine may take a while to start a
# node. It reads the kernel's table of TCP sockets rather than connecting,
# so a try costs no process start and no session in the server's logs.
# With a pid ($3), gives up as soon as that process has exited; with a
# log file ($4), shows its end when it gives up.
wait_port() {
    deadline=$(($(date +%s) + FLEET_WAIT))
    until listening "$1"; do
        why=
        if [ -n "${3:-}" ] && ! alive "$3"; then
            why="$2 exited before it listened on port $1"
        elif [ "$(date +%s)" -ge "$deadline" ]; then
            why="nothing listens on port $1 after $FLEET_WAIT s ($2)"
        fi
        if [ -n "$why" ]; then
            [ -z "${4:-}" ] || why="$why; the end of $4:
$(tail -n 5 "$4" 2>/dev/null)"
            die "$why"
        fi
        sleep 0.1
    done
}

pg_start() {
    bin=$(pg_bin)
    as_pg "$bin/pg_ctl" -D "$FLEET_DIR/pg/data" -l "$FLEET_DIR/pg/log" -w \
        -o "-p $FLEET_PG_PORT -k $FLEET_DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
}

pg_stop() {
    as_pg "$(pg_bin)/pg_ctl" -D "$FLEET_DIR/pg/data" -m fast -w stop >/dev/null
}

pg_up() {
    bin=$(pg_bin)
    mkdir -p "$FLEET_DIR/pg"
    [ "$(id -u)" -eq 0 ] && chown postgres "$FLEET_DIR/pg"
    as_pg "$bin/initdb" -A trust -U postgres -D "$FLEET_DIR/pg/data" >/dev/null
    pg_start
    users="('alice', 'secret'), ('bob', 'secret')"
    i=0
    while [ $i -lt 100 ]; do users="$users, ('load$i', 'secret')"; i=$((i + 1)); done
    as_pg "$bin/psql" -q -h 127.0.0.1 -p "$FLEET_PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
        -c "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT NOT NULL); INSERT INTO users VALUES $users;" >/dev/null
}

redis_up() {
    need /usr/bin/redis-server
    mkdir -p "$FLEET_DIR/redis"
    /usr/bin/redis-server --port "$FLEET_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$FLEET_DIR/redis" --daemonize yes --pidfile "$FLEET_DIR/redis.pid" \
        --logfile "$FLEET_DIR/redis.log"
    wait_port "$FLEET_REDIS_PORT" redis-server
}

node_port() { echo $((FLEET_NODE_BASE + 10 * $1 + $2)); }

node_config() {
    n=$1
    cat > "$FLEET_DIR/node$n.toml" <<TOML
# portcullis node $n of the fleet (written by fleet.sh).
server-name = "node$n.fleet.example"

[[listener]]
protocol = "smtp"
address = "127.0.0.1:$(node_port "$n" 1)"
tls = "starttls"
proxy-protocol = true

[[listener]]
protocol = "smtp"
address = "127.0.0.1:$(node_port "$n" 2)"
tls = "implicit"
proxy-protocol = true

[[listener]]
protocol = "echo"
address = "127.0.0.1:$(node_port "$n" 3)"
proxy-protocol = true

[auth]
# Clients are on loopback here; a real fleet keeps the default.
penalty-trusted = []
penalty-store = "redis://127.0.0.1:$FLEET_REDIS_PORT/0"

[sessions]
# Only HAProxy may send a PROXY header.
proxy-trusted-networks = ["127.0.0.1/32"]
TOML
}

node_start() {
    n=$1
    [ -x "$PORTCULLIS" ] || die "no portcullis binary at $PORTCULLIS (cargo build --release, or set PORTCULLIS)"
    mkdir -p "$FLEET_DIR/spool/node$n"
    # shellcheck disable=SC2086
    # Each node keeps at most FLEET_PG_POOL connections to PostgreSQL.
    setsid "$PORTCULLIS" --config "$FLEET_DIR/node$n.toml" \
        --auth "sql:postgresql://postgres@127.0.0.1:$FLEET_PG_PORT/postgres:pool=${FLEET_PG_POOL:-2}" \
        --maildir "$FLEET_DIR/spool/node$n" \
        --tls-cert "$FLEET_DIR/cert.pem" --tls-key "$FLEET_DIR/key.pem" \
        --metrics-listen "127.0.0.1:$(node_port "$n" 4)" \
        --cache-dir "$FLEET_DIR/plugin-cache" \
        $FLEET_NODE_ARGS \
        </dev/null >>"$FLEET_DIR/node$n.out" 2>>"$FLEET_DIR/node$n.log" &
    echo $! > "$FLEET_DIR/node$n.pid"
    wait_port "$(node_port "$n" 4)" "node $n" $! "$FLEET_DIR/node$n.log"
}

node_pid() { cat "$FLEET_DIR/node$1.pid"; }

# Whether process $1 still runs (a zombie does not: its sockets are closed,
# and nothing may ever reap it).
alive() {
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Whether something listens on 127.0.0.1:$1 (or on every address).
listening() {
    grep -Eq "^ *[0-9]+: (0100007F|00000000):$(printf '%04X' "$1") 00000000:0000 0A " /proc/net/tcp
}

# Until node $2's process $1 has ended and none of its ports listens any
# more, so HAProxy's next connection to it is refused (and redispatched)
# rather than queued and then reset, and a new node can bind them. The
# ports matter: a killed process's first thread may be a zombie while the
# others still tear down its memory, its sockets still open.
wait_gone() {
    while alive "$1" || listening "$(node_port "$2" 1)" || listening "$(node_port "$2" 2)" ||
        listening "$(node_port "$2" 3)" || listening "$(node_port "$2" 4)"; do
        sleep 0.02
    done
}

# Asks HAProxy's admin socket.
haproxy_cmd() {
    python3 - "$FLEET_DIR/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.write(out.decode())
PY
}

up() {
    need /usr/sbin/haproxy
    command -v python3 >/dev/null || die "python3 is missing: run \`sh tests/setup.sh\` as root first"
    [ ! -e "$FLEET_DIR/haproxy.pid" ] || die "$FLEET_DIR holds a fleet already: fleet.sh down first"
    mkdir -p "$FLEET_DIR"
    chmod 755 "$FLEET_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=fleet.example" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$FLEET_DIR/key.pem" -out "$FLEET_DIR/cert.pem" 2>/dev/null
    pg_up
    redis_up
    for n in 1 2 3; do
        node_config "$n"
        node_start "$n"
    done
    # In the foreground of a process of its own, so its log (one line per
    # connection, with how it ended) goes to haproxy.log.
    setsid /usr/sbin/haproxy -f "$here/haproxy.cfg" -db </dev/null >"$FLEET_DIR/haproxy.log" 2>&1 &
    echo $! > "$FLEET_DIR/haproxy.pid"
    wait_port "$FLEET_SMTP_PORT" haproxy $! "$FLEET_DIR/haproxy.log"
    echo "fleet.sh: up: SMTP on 127.0.0.1:$FLEET_SMTP_PORT, implicit TLS on 127.0.0.1:$FLEET_SMTPS_PORT (certificate $FLEET_DIR/cert.pem), state in $FLEET_DIR"
}

down() {
    for f in "$FLEET_DIR"/haproxy.pid "$FLEET_DIR"/node*.pid "$FLEET_DIR"/redis.pid; do
        [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
    if [ -d "$FLEET_DIR/pg/data" ]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$FLEET_DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
}

restart() {
    n=$1
    haproxy_cmd "set server smtp_nodes/node$n state drain" >/dev/null
    haproxy_cmd "set server smtps_nodes/node$n state drain" >/dev/null
    pid=$(node_pid "$n")
    kill -TERM "$pid"
    wait_gone "$pid" "$n"
    node_start "$n"
    haproxy_cmd "set server smtp_nodes/node$n state ready" >/dev/null
    haproxy_cmd "set server smtps_nodes/node$n state ready" >/dev/null
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) haproxy_cmd "show servers state" ;;
    kill) pid=$(node_pid "$2"); kill -9 "$pid"; wait_gone "$pid" "$2" ;;
    start) node_start "$2" ;;
    restart) restart "$2" ;;
    reload) kill -HUP "$(node_pid "$2")" ;;
    pg-stop) pg_stop ;;
    pg-start) pg_start ;;
    pg-restart) pg_stop; pg_start ;;
    redis) shift; redis-cli -p "$FLEET_REDIS_PORT" "$@" ;;
    psql) as_pg "$(pg_bin)/psql" -qAt -h 127.0.0.1 -p "$FLEET_PG_PORT" -U postgres -c "$2" ;;
    *) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
