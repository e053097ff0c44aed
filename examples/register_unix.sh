#!/usr/bin/env bash
# A client of the coordinator protocol, by hand, over the relay's Unix socket:
#   1. register a state and wait for the relay's "registered" line, which says how long it holds it
#      (no token here: no handshake, the register line comes first);
#   2. play the provider's redirect with curl: the relay delivers the callback on the socket and closes it;
#   3. replay the callback (404) and register the same state again (refused: state_used).
# Prints the lines the relay sent on stdout, one JSON object per line, and a narration on stderr.
# Exits 0 when every step went as docs/protocol.md says, 1 otherwise.
#
#   OAUTH_SOCKET_PATH=/run/oauth-relay/relay.sock RELAY_URL=http://127.0.0.1:8000 examples/register_unix.sh
#
# Environment: OAUTH_SOCKET_PATH (default: the relay's default, /tmp/poast-relay-oauth.sock),
# RELAY_URL (http://127.0.0.1:$PORT, PORT 8000), OAUTH_CALLBACK_PATH (/oauth/callback),
# STATE (default: fresh random), CODE, TIMEOUT (seconds the registration lasts, 120),
# READ_TIMEOUT (seconds to wait for a line, 10), CONNECT_WITH (socat or nc).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

socket=${OAUTH_SOCKET_PATH:-/tmp/poast-relay-oauth.sock}
state=${STATE:-$(random_state)}
code=${CODE:-SplxlOBeZQQYbYS6WxSbIA}
url_safe STATE "$state"
url_safe CODE "$code"
register="{\"v\":2,\"type\":\"register\",\"state\":\"$state\",\"timeout\":${TIMEOUT:-120}}"

say "1. register over $socket"
open_connection unix "$socket"
send "$register"
expect_line registered "\"state\":\"$state\""
[[ $LINE =~ \"timeout\":([0-9.e+-]+) ]] || die "the registered line has no timeout"
say "   the relay holds the registration for ${BASH_REMATCH[1]} s (at most OAUTH_MAX_TIMEOUT)"

say "2. the provider's redirect"
callback "code=$code&state=$state" 200
expect_line callback "\"success\":true,\"code\":\"$code\",\"state\":\"$state\""
expect_end
close_connection

say "3. a replay, then the same state again"
callback "code=$code&state=$state" 404
open_connection unix "$socket"
send "$register"
expect_line error '"code":"state_used"'
expect_end
close_connection
say "ok"
