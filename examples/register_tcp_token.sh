#!/usr/bin/env bash
# A client of the coordinator protocol, by hand, over TCP to a relay that has a coordinator token:
#   1. register without the token: one error line, unauthorized;
#   2. register with it, wait for "registered", then play the provider's redirect with curl, here with
#      an `iss` parameter (RFC 9207): the relay forwards it in `raw`.
# Prints the lines the relay sent on stdout and a narration on stderr; exits 0 when all went as
# docs/protocol.md says, 1 otherwise.
#
#   OAUTH_COORDINATOR_TOKEN=... OAUTH_TCP_FALLBACK_PORT=9999 examples/register_tcp_token.sh
#
# Environment: OAUTH_COORDINATOR_TOKEN (required; the relay's token), OAUTH_TCP_HOST (127.0.0.1),
# OAUTH_TCP_FALLBACK_PORT (9999), RELAY_URL (http://127.0.0.1:$PORT, PORT 8000),
# OAUTH_CALLBACK_PATH (/oauth/callback), STATE (default: fresh random), CODE, ISS, TIMEOUT (120),
# READ_TIMEOUT (10). Needs only bash (its /dev/tcp) and curl; `socat - TCP:127.0.0.1:9999` does the same by hand.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host=${OAUTH_TCP_HOST:-127.0.0.1}
host=${host#[}
host=${host%]}
port=${OAUTH_TCP_FALLBACK_PORT:-9999}
token=${OAUTH_COORDINATOR_TOKEN:-}
[[ -n $token ]] || die "set OAUTH_COORDINATOR_TOKEN to the relay's coordinator token"
if [[ $token == *[\"\\]* || $token == *[^[:print:]]* ]]; then die "this example takes a token without \", \\ or control characters"; fi
state=${STATE:-$(random_state)}
code=${CODE:-tcp-code-123}
iss=${ISS:-https://provider.example}
url_safe STATE "$state"
url_safe CODE "$code"
[[ $iss =~ ^https://[A-Za-z0-9.-]+$ ]] || die "ISS must look like https://host"
register="{\"v\":1,\"type\":\"register\",\"state\":\"$state\",\"timeout\":${TIMEOUT:-120}"

say "1. register over TCP $host:$port without the token"
open_connection tcp "$host" "$port"
send "$register}"
expect_line error '"code":"unauthorized"'
expect_end
close_connection

say "2. register with the token (not shown), then the provider's redirect"
open_connection tcp "$host" "$port"
say "→ $register,\"token\":\"…\"}"
printf '%s\n' "$register,\"token\":\"$token\"}" >&3 || die "cannot write to the relay"
expect_line registered "\"state\":\"$state\""
iss_query=${iss//:/%3A}
callback "code=$code&state=$state&iss=${iss_query//\//%2F}" 200
expect_line callback "\"raw\":{\"code\":\"$code\",\"state\":\"$state\",\"iss\":\"$iss\"}"
expect_end
close_connection
say "ok"
