#!/usr/bin/env bash
# Registers `coap register` with aiocoap's Resource Directory (aiocoap-rd,
# RFC 9176) on a free loopback port and checks, with aiocoap-client on the
# RD's lookup interfaces, that the registration and its resources appear,
# that the lifetime is refreshed, that a client reaches a resource at the
# address the RD recorded, that deregistration removes it, and that simple
# registration (RFC 9176 §5.1) works. Every process is stopped by its PID.
#
#   interop/run-check-rd.sh
#
# Prints one PASS/FAIL line per check and `N passed, M failed`; exits
# nonzero on any failure. Builds the release `coap` binary only if it is
# missing (honours CARGO_TARGET_DIR).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release/coap"
if [ ! -x "$bin" ]; then
  cargo build --release --features cli --bin coap --manifest-path "$root/Cargo.toml" || exit 1
fi
client="${AIOCOAP_CLIENT:-aiocoap-client}"
rdbin="${AIOCOAP_RD:-aiocoap-rd}"

passed=0
failed=0
check() { # NAME CONDITION-STATUS [DETAIL]
  if [ "$2" -eq 0 ]; then
    echo "PASS $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1${3:+: $3}"
    failed=$((failed + 1))
  fi
}

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port="$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
rd="coap://127.0.0.1:$port"
"$rdbin" --bind "127.0.0.1:$port" >"$tmp/rd.log" 2>&1 &
pids+=($!)

get() { timeout 20 "$client" "$@" 2>/dev/null; }

# Wait for the RD (aiocoap takes a moment to start).
wk=""
for _ in $(seq 1 40); do
  wk="$(get "$rd/.well-known/core")" && [ -n "$wk" ] && break
  sleep 0.25
done
check "rd-started" "$([ -n "$wk" ]; echo $?)" "$(tail -n 3 "$tmp/rd.log")"

# The lookup interfaces the RD advertises (RFC 9176 §4.3).
path_of() { # RT
  printf '%s' "$wk" | tr ',' '\n' | grep -E "rt=\"?$1\"?(;|$)" | head -n 1 | sed -E 's/^<([^>]*)>.*/\1/'
}
ep_lookup="$(path_of core.rd-lookup-ep)"
res_lookup="$(path_of core.rd-lookup-res)"
check "lookup-interfaces-advertised" "$([ -n "$ep_lookup" ] && [ -n "$res_lookup" ]; echo $?)" "$wk"

wait_for() { # FILE PATTERN SECONDS
  local n=$(($3 * 10))
  for _ in $(seq 1 "$n"); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Registration with a 4 s lifetime, deregistered after 9 s.
ep="coap-proto-$$"
"$bin" register "$rd" --ep "$ep" --lt 4 --for 9 >"$tmp/reg.out" 2>"$tmp/reg.err" &
regpid=$!
pids+=("$regpid")
wait_for "$tmp/reg.out" '^registered ' 5
check "registered" $? "$(cat "$tmp/reg.out" "$tmp/reg.err")"
grep -q '^discovered ' "$tmp/reg.out"
check "registration-interface-discovered" $? "$(cat "$tmp/reg.out")"

eps="$(get "$rd$ep_lookup")"
printf '%s' "$eps" | grep -q "ep=\"$ep\""
check "endpoint-listed" $? "$eps"
res="$(get "$rd$res_lookup")"
for r in /test /obs /large; do
  printf '%s' "$res" | tr ',' '\n' | grep -q "^<coap://[^>]*$r>"
  check "resource-listed-$r" $? "$res"
done

# Past the first lifetime (4 s) it must still be there: refreshed.
sleep 6
grep -q '^refreshed ' "$tmp/reg.out"
check "refreshed-before-lifetime" $? "$(cat "$tmp/reg.out")"
eps="$(get "$rd$ep_lookup")"
printf '%s' "$eps" | grep -q "ep=\"$ep\""
check "still-registered-after-first-lifetime" $? "$eps"

# A client reaches a resource at the address the RD recorded (base).
base="$(printf '%s' "$eps" | tr ',' '\n' | grep "ep=\"$ep\"" | sed -nE 's/.*base="([^"]*)".*/\1/p' | head -n 1)"
serving="$(sed -nE 's/.*serving on coap:\/\/[^ ]*:([0-9]+),.*/\1/p' "$tmp/reg.err")"
printf '%s' "$base" | grep -q ":$serving\$"
check "base-is-our-socket" $? "base=$base serving port=$serving"
hello="$(get "$base/test")"
[ "$hello" = "Hello from coap-proto: this is /test" ]
check "resource-reachable-at-recorded-address" $? "$hello"

# --for 9: deregisters (RFC 9176 §5.3.2) and exits 0.
for _ in $(seq 1 100); do kill -0 "$regpid" 2>/dev/null || break; sleep 0.1; done
wait "$regpid"
status=$?
check "exit-status-0" "$status" "$(cat "$tmp/reg.err")"
grep -qx 'deregistered' "$tmp/reg.out"
check "deregistered" $? "$(cat "$tmp/reg.out")"
# (The lookups must answer 2.xx, so that an absent answer does not pass.)
eps="$(get "$rd$ep_lookup")"
st=$?
[ "$st" -eq 0 ] && ! printf '%s' "$eps" | grep -q "ep=\"$ep\""
check "endpoint-gone-after-deregistration" $? "status $st: $eps"
res="$(get "$rd$res_lookup")"
st=$?
[ "$st" -eq 0 ] && ! printf '%s' "$res" | grep -q "coap://127.0.0.1:$serving/"
check "resources-gone-after-deregistration" $? "status $st: $res"

# Simple registration (RFC 9176 §5.1): the RD fetches /.well-known/core.
ep2="coap-proto-simple-$$"
"$bin" register "$rd" --ep "$ep2" --lt 60 --simple --for 4 >"$tmp/simple.out" 2>"$tmp/simple.err" &
simplepid=$!
pids+=("$simplepid")
wait_for "$tmp/simple.out" '^registered ' 5
check "simple-registered" $? "$(cat "$tmp/simple.out" "$tmp/simple.err")"
eps="$(get "$rd$ep_lookup")"
printf '%s' "$eps" | grep -q "ep=\"$ep2\""
check "simple-endpoint-listed" $? "$eps"
res="$(get "$rd$res_lookup")"
printf '%s' "$res" | tr ',' '\n' | grep -q "^<coap://[^>]*/obs>"
check "simple-resources-fetched-by-rd" $? "$res"
for _ in $(seq 1 100); do kill -0 "$simplepid" 2>/dev/null || break; sleep 0.1; done
wait "$simplepid"
check "simple-exit-status-0" $? "$(cat "$tmp/simple.err")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
