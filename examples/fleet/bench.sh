#!/bin/sh
# The fleet's figures, in one run (a benchmark report, not a test): logins/s
# through HAProxy with 1, 2 and 3 nodes against one node without HAProxy,
# all with the same load generator (portcullis-bench smtp: new connection,
# EHLO, AUTH PLAIN, QUIT per login); and the latency the PROXY header and
# the shared penalty store add per login. Needs a release build:
#
#   cargo build --release -p portcullis -p portcullis-bench
#   sh examples/fleet/bench.sh [CLIENTS] [SECONDS]
#
# Everything runs on this machine: the load generator, HAProxy, Redis,
# PostgreSQL and the nodes share its cores, so the scaling figures show the
# cost of the extra hops here, not what N machines would give. Each load
# line says how much CPU the load generator (a multi-threaded tokio runtime,
# one worker per core) and the portcullis processes used, from
# /usr/bin/time and /proc, and the load average is printed before and after.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
clients=${1:-32}
seconds=${2:-5}
export FLEET_DIR=${FLEET_DIR:-/tmp/portcullis-fleet-bench}
export FLEET_SMTP_PORT=${FLEET_SMTP_PORT:-32525} FLEET_SMTPS_PORT=${FLEET_SMTPS_PORT:-32465}
export FLEET_REDIS_PORT=${FLEET_REDIS_PORT:-32379} FLEET_PG_PORT=${FLEET_PG_PORT:-32432}
export FLEET_NODE_BASE=${FLEET_NODE_BASE:-32600}
export PORTCULLIS=${PORTCULLIS:-$root/target/release/portcullis}
bench=$root/target/release/portcullis-bench
# A 1 ms penalty, capped at 1 ms: a failed login then costs its store
# round trip plus a constant, so the store's share shows.
# The load comes from one address: no per-address caps.
export FLEET_NODE_ARGS="--auth-failure-delay 0s --auth-penalty 1ms --auth-penalty-cap 1ms --max-connections-per-address 0 --max-exchanges-per-address 0"
fleet="sh $here/fleet.sh"
$fleet down 2>/dev/null || true
rm -rf "$FLEET_DIR"
$fleet up >&2
d0=; d1=
trap '$fleet down; kill $d0 $d1 2>/dev/null || true' EXIT

# Two nodes without HAProxy on the same PostgreSQL: d0 counts the penalty
# in-process, d1 in the fleet's Redis.
direct() {
    port=$1
    shift
    "$PORTCULLIS" --smtp-listen "127.0.0.1:$port" --echo-listen 127.0.0.1:0 \
        --auth "sql:postgresql://postgres@127.0.0.1:$FLEET_PG_PORT/postgres" \
        --cache-dir "$FLEET_DIR/plugin-cache" --tls-cert "$FLEET_DIR/cert.pem" --tls-key "$FLEET_DIR/key.pem" \
        --auth-penalty-trusted none $FLEET_NODE_ARGS "$@" </dev/null >/dev/null 2>>"$FLEET_DIR/direct.log" &
}
d0_port=$((FLEET_NODE_BASE + 91)); d1_port=$((FLEET_NODE_BASE + 92))
direct $d0_port; d0=$!
shift_args="--auth-penalty-store redis://127.0.0.1:$FLEET_REDIS_PORT/0"
direct $d1_port $shift_args; d1=$!
sleep 3
node1=$((FLEET_NODE_BASE + 11))

admin() {
    python3 - "$FLEET_DIR/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
while s.recv(65536): pass
PY
}
nodes() {
    for node in 1 2 3; do
        if [ "$node" -le "$1" ]; then state=ready; else state=maint; fi
        admin "set server smtp_nodes/node$node state $state"
    done
    sleep 1
}

# CPU seconds (user + system) process $1 has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# CPU seconds used by every portcullis process of the bench (the direct
# nodes and the fleet's).
servers_cpu() {
    total=0
    for pid in $d0 $d1 $(cat "$FLEET_DIR"/node*.pid); do
        total=$(echo "$total $(cpu "$pid")" | awk '{ printf "%.2f", $1 + $2 }')
    done
    echo "$total"
}

# One load against $1: the bench's summary, then the CPU it and the
# servers used, as a share of one core over the load's wall time.
load() {
    before=$(servers_cpu)
    out=$(/usr/bin/time -f '%U %S %e' -o "$FLEET_DIR/time.out" \
        "$bench" smtp --addr "$1" --user alice --pass secret --clients "$clients" --seconds "$seconds" --max-count 1000000)
    after=$(servers_cpu)
    read -r user sys wall < "$FLEET_DIR/time.out"
    share=$(echo "$user $sys $wall $before $after" |
        awk '{ printf "load generator %.0f%%, portcullis %.0f%% of one core", 100 * ($1 + $2) / $3, 100 * ($5 - $4) / $3 }')
    echo "$out | $share"
}

echo "## Fleet logins/s (AUTH PLAIN, users in PostgreSQL, penalty store in Redis)"
echo
echo "$(nproc) cores for everything; portcullis-bench smtp (tokio, $(nproc) worker threads), $clients clients, ${seconds} s per load, one run."
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| target | logins/s (n, latency) | CPU |"
echo "| --- | --- | --- |"
echo "| one node, no HAProxy | $(load 127.0.0.1:$d1_port) |"
for n in 1 2 3; do
    nodes $n
    echo "| HAProxy, $n node(s) | $(load 127.0.0.1:$FLEET_SMTP_PORT) |"
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "## Latency per login, one client, sequential (median of 300)"
echo
python3 - "$d0_port" "$d1_port" "$node1" <<'PY'
import base64, socket, statistics, struct, sys, time
d0, d1, proxied = (int(p) for p in sys.argv[1:])

def header(port):
    # PROXY v2, TCP over IPv4, from 127.0.0.10:port to 10.0.0.1:25 (a
    # loopback client, so AUTH PLAIN is allowed without TLS, as for the
    # node without a header)
    return (b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
            + bytes([127, 0, 0, 10, 10, 0, 0, 1]) + struct.pack("!HH", port, 25))

def login(port, password, proxy=False, n=0):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    start = time.perf_counter()
    if proxy:
        s.sendall(header(1024 + n % 60000))
    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line
    reply()
    s.sendall(b"EHLO bench.example\r\n"); reply()
    auth = base64.b64encode(b"\0alice\0" + password).decode()
    s.sendall(f"AUTH PLAIN {auth}\r\n".encode()); code = reply()[:3]
    took = time.perf_counter() - start
    s.sendall(b"QUIT\r\n"); reply(); s.close()
    return code, took

def median(port, password, want, proxy=False):
    times = []
    for n in range(300):
        code, took = login(port, password, proxy, n)
        assert code == want, (port, code)
        times.append(took)
    return statistics.median(times) * 1000

ok_plain = median(d1, b"secret", b"235")
ok_proxy = median(proxied, b"secret", b"235", proxy=True)
bad_local = median(d0, b"wrong", b"535")
bad_store = median(d1, b"wrong", b"535")
print("| what | median ms |")
print("| --- | --- |")
print(f"| successful login, no PROXY header (node without proxy-protocol) | {ok_plain:.2f} |")
print(f"| successful login, PROXY v2 header sent by the client | {ok_proxy:.2f} |")
print(f"| failed login, penalty in-process | {bad_local:.2f} |")
print(f"| failed login, penalty in Redis | {bad_store:.2f} |")
print()
print(f"PROXY header: {ok_proxy - ok_plain:+.2f} ms per login; shared penalty store: {bad_store - bad_local:+.2f} ms per failed login.")
PY
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
