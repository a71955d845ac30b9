#!/usr/bin/env bash
# coap-adapter.sh -- the adapter between ../shared/interop/check-client.sh and
# this project's `coap` command-line client:
#
#   coap-adapter.sh get|delete URI        print the response payload (raw bytes)
#   coap-adapter.sh put|post URI FILE     send FILE as a text/plain payload
#   coap-adapter.sh observe URI SECONDS   print each notification on a line
#
# The exit status is 0 only on a 2.xx response (the `coap` client's own rule;
# 1 on 4.xx/5.xx, 2 on a usage error, 3 on timeout or Reset).
#
# The client is $COAP_BIN if set, else target/release/coap next to this
# script's folder (build it with `cargo build --release --features cli`),
# else `cargo run --release`.
#
set -u
here="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${COAP_BIN:-}" ]; then
  coap=("$COAP_BIN")
elif [ -x "$here/../target/release/coap" ]; then
  coap=("$here/../target/release/coap")
else
  coap=(cargo run --quiet --release --features cli --manifest-path "$here/../Cargo.toml" --bin coap --)
fi

usage() {
  echo "usage: $0 get|delete URI | put|post URI FILE | observe URI SECONDS" >&2
  exit 2
}

[ $# -ge 2 ] || usage
verb="$1"; uri="$2"
case "$verb" in
  get|delete)
    [ $# = 2 ] || usage
    exec "${coap[@]}" "$verb" "$uri" ;;
  put|post)
    [ $# = 3 ] || usage
    exec "${coap[@]}" "$verb" --content-format text/plain --file "$3" "$uri" ;;
  observe)
    [ $# = 3 ] || usage
    # RFC 7641: one line per notification, GET Observe:1 at the end.
    exec "${coap[@]}" get --observe "$3" "$uri" ;;
  *) usage ;;
esac
