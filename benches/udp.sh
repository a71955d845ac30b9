#!/usr/bin/env bash
# UDP server benchmark: `coap serve` (this crate, release build) against
# libcoap's coap-server and a bare UDP responder (examples/udp_echo.rs, the
# machine's bound), on loopback, in the same run, with the same load
# generator (`coap load`).
#
#   benches/udp.sh                 # full run, writes benches/README-udp.md
#   DURATION=3 ROUNDS=1 RSS_REQUESTS=200000 OUT=/dev/null benches/udp.sh   # quick look
#
# For every server and every concurrency (1, 16, 64) it runs `coap load` for
# DURATION seconds and reports requests/s, p50/p99 latency (from the load
# generator) and the server's CPU time per request (utime+stime from
# /proc/PID/stat before and after, divided by the requests answered). Before
# that sweep, each fresh server is driven through RSS_REQUESTS requests
# (1 million) to report its VmRSS at start, after those requests, and again
# after the whole sweep (flat RSS = the last two agree). The sweep runs
# ROUNDS times, servers interleaved, and the best round per cell is kept
# (noise on a shared machine only ever makes a run slower).
#
# ours:    GET /test  -> 2.05, 36-byte text payload, piggybacked
# libcoap: GET /      -> 2.05, its banner text, piggybacked
# bare:    any request -> the datagram's header and token as ACK 2.05
#
# Knobs (environment): DURATION (10), ROUNDS (2), CONCURRENCY ("1 16 64"),
# RSS_REQUESTS (1000000), PIN (1: server on CPU 1, load on CPU 0 with
# taskset, when there are 2+ CPUs), OUT (benches/README-udp.md),
# COAP_SERVER (libcoap binary), LOAD_ARGS (extra `coap load` arguments,
# e.g. --non).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
RSS_REQUESTS=${RSS_REQUESTS:-1000000}
PIN=${PIN:-1}
OUT=${OUT:-benches/README-udp.md}
LOAD_ARGS=${LOAD_ARGS:-}
COMMAND="$0 $*"
ENVLINE="DURATION=$DURATION ROUNDS=$ROUNDS CONCURRENCY=\"$CONCURRENCY\" RSS_REQUESTS=$RSS_REQUESTS PIN=$PIN${LOAD_ARGS:+ LOAD_ARGS=\"$LOAD_ARGS\"}"

log() { echo "udp.sh: $*" >&2; }

cargo build --quiet --release --features cli --bin coap --example udp_echo
COAP=target/release/coap
ECHO=target/release/examples/udp_echo

LIBCOAP=${COAP_SERVER:-}
if [ -z "$LIBCOAP" ]; then
    for c in coap-server coap-server-gnutls coap-server-openssl coap-server-notls; do
        if command -v "$c" >/dev/null 2>&1; then LIBCOAP=$c; break; fi
    done
fi

SERVER_CPU=() LOAD_CPU=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 1)
    LOAD_CPU=(taskset -c 0)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CLK_TCK=$(getconf CLK_TCK)
# utime+stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Servers: name, URI path, pid, port.
NAMES=() PATHS=() SPIDS=() PORTS=()
start_server() { # name path command...
    local name=$1 path=$2 port
    shift 2
    port=$(free_port)
    local cmd=("$@")
    cmd=("${cmd[@]//@PORT@/$port}")
    "${SERVER_CPU[@]}" "${cmd[@]}" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    # Ready once it answers.
    local i
    for i in $(seq 50); do
        if "$COAP" load "coap://127.0.0.1:$port$path" -c 1 -n 1 -d 1 --timeout 0.2 >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    kill -0 "$pid" || { log "$name did not start: $(cat "$WORK/$name.log")"; exit 1; }
    NAMES+=("$name") PATHS+=("$path") SPIDS+=("$pid") PORTS+=("$port")
    log "started $name (pid $pid) on 127.0.0.1:$port"
}

start_server "coap-proto" /test "$COAP" serve --bind 127.0.0.1:@PORT@
if [ -n "$LIBCOAP" ]; then
    start_server "libcoap" / "$LIBCOAP" -A 127.0.0.1 -p @PORT@
else
    log "no libcoap coap-server found: skipped (install libcoap3-bin)"
fi
start_server "bare UDP responder" /test "$ECHO" 127.0.0.1:@PORT@

# One `coap load` run; prints its key=value summary line.
load() { # index concurrency extra-args...
    local i=$1 c=$2
    shift 2
    # shellcheck disable=SC2086
    "${LOAD_CPU[@]}" "$COAP" load "coap://127.0.0.1:${PORTS[$i]}${PATHS[$i]}" -c "$c" $LOAD_ARGS "$@" 2>/dev/null | tail -n 1
}
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

declare -A RSS0 RSS1 RSS2
for i in "${!NAMES[@]}"; do
    pid=${SPIDS[$i]}
    RSS0[$i]=$(rss_kib "$pid")
    log "${NAMES[$i]}: $RSS_REQUESTS requests for the RSS measurement"
    line=$(load "$i" 64 -n "$RSS_REQUESTS" -d 600)
    log "  $line"
    RSS1[$i]=$(rss_kib "$pid")
done

declare -A RPS P50 P99 CPU
for round in $(seq "$ROUNDS"); do
    for c in $CONCURRENCY; do
        for i in "${!NAMES[@]}"; do
            pid=${SPIDS[$i]}
            t0=$(cpu_ticks "$pid")
            line=$(load "$i" "$c" -d "$DURATION")
            t1=$(cpu_ticks "$pid")
            n=$(field requests "$line")
            rps=$(field rps "$line")
            cpu=$(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "-" }')
            log "round $round, c=$c, ${NAMES[$i]}: $line cpu_us=$cpu"
            key="$i,$c"
            if [ -z "${RPS[$key]:-}" ] || awk -v a="$rps" -v b="${RPS[$key]}" 'BEGIN { exit !(a > b) }'; then
                RPS[$key]=$rps P50[$key]=$(field p50_us "$line") P99[$key]=$(field p99_us "$line") CPU[$key]=$cpu
            fi
        done
    done
done
for i in "${!NAMES[@]}"; do RSS2[$i]=$(rss_kib "${SPIDS[$i]}"); done

# libcoap is the reference for the ratio column.
REF=""
for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = libcoap ] && REF=$i; done

table() {
    echo "| server | concurrency | requests/s | p50 latency (µs) | p99 latency (µs) | server CPU per request (µs) | requests/s vs libcoap |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in $CONCURRENCY; do
        for i in "${!NAMES[@]}"; do
            key="$i,$c"
            ratio="-"
            if [ -n "$REF" ] && [ -n "${RPS[$REF,$c]:-}" ]; then
                ratio=$(awk -v a="${RPS[$key]}" -v b="${RPS[$REF,$c]}" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }')
            fi
            echo "| ${NAMES[$i]} | $c | ${RPS[$key]} | ${P50[$key]} | ${P99[$key]} | ${CPU[$key]} | $ratio |"
        done
    done
    echo
    echo "| server | RSS at start (KiB) | RSS after $RSS_REQUESTS requests (KiB) | RSS after the sweep (KiB) |"
    echo "| --- | ---: | ---: | ---: |"
    for i in "${!NAMES[@]}"; do
        echo "| ${NAMES[$i]} | ${RSS0[$i]} | ${RSS1[$i]} | ${RSS2[$i]} |"
    done
}

libcoap_version() {
    if [ -n "$LIBCOAP" ]; then
        dpkg-query -W -f '${Package} ${Version}' libcoap3-bin 2>/dev/null ||
            "$LIBCOAP" -h 2>&1 | head -n 1
    fi
}

TABLE=$(table)
echo "$TABLE"

if [ "$OUT" != /dev/null ]; then
    {
        echo "# UDP server benchmark"
        echo
        echo "Generated by \`benches/udp.sh\`; see the comment at its top and the notes below."
        echo
        echo "Command: \`$ENVLINE $COMMAND\` (run from the repository root)"
        echo
        echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
        echo "- Pinning: ${SERVER_CPU[*]:-none} for servers, ${LOAD_CPU[*]:-none} for \`coap load\`"
        echo "- libcoap: $(libcoap_version) (\`$LIBCOAP -A 127.0.0.1 -p PORT\`, GET /)"
        echo "- coap-proto: \`coap serve\`, release build, features cli (GET /test)"
        echo "- Each cell: best of $ROUNDS runs of $DURATION s; \`coap load -c N\` ${LOAD_ARGS:-(CON)}"
        echo
        echo "$TABLE"
        if [ -f benches/README-udp.notes.md ]; then
            echo
            cat benches/README-udp.notes.md
        fi
    } >"$OUT"
    log "wrote $OUT"
fi
