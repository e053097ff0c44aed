#!/usr/bin/env bash
# Remote waiting with nothing but curl: any language that can read an HTTP stream can wait.
#   1. POST /v1/wait with the client token: the relay answers with a server-sent-event stream whose first
#      event is "registered" (with the resume secret and when the registration expires);
#   2. play the provider's redirect with curl: the stream carries a "callback" event, then ends.
# Prints the events' data lines on stdout and a narration on stderr. Exits 0 when it went as
# docs/protocol.md says, 1 otherwise.
#
#   OAUTH_CLIENT_TOKEN=... RELAY_URL=https://relay.example.com examples/wait_curl.sh
#
# Environment: OAUTH_CLIENT_TOKEN (required), RELAY_URL (http://127.0.0.1:$PORT, PORT 8000),
# OAUTH_CALLBACK_PATH (/oauth/callback), STATE (default: fresh random), CODE, READ_TIMEOUT (10).
# CURL_CA_BUNDLE may name a CA file for a relay with a private certificate.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

token=${OAUTH_CLIENT_TOKEN:-}
[[ -n $token ]] || die "set OAUTH_CLIENT_TOKEN to a client token the relay accepts (OAUTH_CLIENT_TOKENS)"
state=${STATE:-$(random_state)}
code=${CODE:-SplxlOBeZQQYbYS6WxSbIA}
url_safe STATE "$state"
url_safe CODE "$code"

STREAM_DIR=$(mktemp -d)
trap 'kill "${CURL_PID:-}" 2>/dev/null || true; rm -rf "$STREAM_DIR"' EXIT
mkfifo "$STREAM_DIR/events" "$STREAM_DIR/headers"
# The token goes in a header read from stdin (-H @-), so it is not on curl's command line for `ps` to show.
printf 'Authorization: Bearer %s\n' "$token" |
  curl -sSN --fail-with-body -H @- -H 'Content-Type: application/json' \
    -d "{\"state\":\"$state\",\"timeout\":120}" "${RELAY_URL%/}/v1/wait" >"$STREAM_DIR/events" &
CURL_PID=$!
exec 5<"$STREAM_DIR/events"

# next_event: reads one event (event: and data: lines up to the blank line; comments skipped) into EVENT and DATA.
next_event() {
  EVENT= DATA=
  local line
  while IFS= read -r -t "$READ_TIMEOUT" line <&5; do
    line=${line%$'\r'}
    case $line in
    "") [[ -n $DATA ]] && return 0 ;;
    :*) ;;
    event:*) EVENT=${line#event: } ;;
    data:*) DATA=${line#data: } ;;
    esac
  done
  return 1
}

say "1. POST ${RELAY_URL%/}/v1/wait for state $state"
next_event || die "no event within ${READ_TIMEOUT} s (is OAUTH_CLIENT_TOKEN one of the relay's OAUTH_CLIENT_TOKENS?)"
[[ $EVENT == registered ]] || die "expected a registered event, got '$EVENT': $DATA"
[[ $DATA =~ \"resume\":\"[A-Za-z0-9_-]{43}\" ]] || die "the registered event has no resume secret: $DATA"
printf '%s\n' "$DATA"
say "   registered; the stream stays open"

say "2. the provider's redirect"
callback "code=$code&state=$state" 200
next_event || die "no callback event within ${READ_TIMEOUT} s"
[[ $EVENT == callback ]] || die "expected a callback event, got '$EVENT': $DATA"
[[ $DATA == *"\"code\":\"$code\""* ]] || die "the callback does not carry the code: $DATA"
printf '%s\n' "$DATA"
wait "$CURL_PID" || die "the stream did not end cleanly"
say "ok"
