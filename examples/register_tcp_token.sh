#!/usr/bin/env bash
# A client of the coordinator protocol, by hand, over TCP to a relay that has a coordinator token. The
# token never crosses the wire: each side proves it knows it by an HMAC over the other's random nonce
# (docs/protocol.md, "Token handshake").
#   1. register without a proof: one error line, unauthorized;
#   2. the handshake with a guessed token: the relay's proof does not check out for the guesser, and
#      the guessed proof is refused, unauthorized;
#   3. the handshake with the token: hello, check the relay's proof in its challenge, register with ours,
#      wait for "registered", then play the provider's redirect with curl, here with an `iss` parameter
#      (RFC 9207): the relay forwards it in `raw`.
# Every line sent is shown (→ on stderr); none holds the token, and the script checks that too. Prints
# the lines the relay sent on stdout; exits 0 when all went as docs/protocol.md says, 1 otherwise.
#
#   OAUTH_COORDINATOR_TOKEN=... OAUTH_TCP_FALLBACK_PORT=9999 examples/register_tcp_token.sh
#
# Environment: OAUTH_COORDINATOR_TOKEN (required; the relay's token), OAUTH_TCP_HOST (127.0.0.1),
# OAUTH_TCP_FALLBACK_PORT (9999), RELAY_URL (http://127.0.0.1:$PORT, PORT 8000),
# OAUTH_CALLBACK_PATH (/oauth/callback), STATE (default: fresh random), CODE, ISS, TIMEOUT (120),
# READ_TIMEOUT (10). Needs bash (its /dev/tcp), curl and openssl (nonces and HMAC-SHA256).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host=${OAUTH_TCP_HOST:-127.0.0.1}
host=${host#[}
host=${host%]}
port=${OAUTH_TCP_FALLBACK_PORT:-9999}
token=${OAUTH_COORDINATOR_TOKEN:-}
[[ -n $token ]] || die "set OAUTH_COORDINATOR_TOKEN to the relay's coordinator token"
state=${STATE:-$(random_state)}
code=${CODE:-tcp-code-123}
iss=${ISS:-https://provider.example}
url_safe STATE "$state"
url_safe CODE "$code"
[[ $iss =~ ^https://[A-Za-z0-9.-]+$ ]] || die "ISS must look like https://host"
register="{\"v\":2,\"type\":\"register\",\"state\":\"$state\",\"timeout\":${TIMEOUT:-120}"

# handshake KEY: sends hello with a fresh nonce, reads the challenge, and sets RELAY_NONCE, RELAY_PROOF
# (what the relay sent), EXPECTED (the relay's proof if it holds KEY) and CLIENT_PROOF (ours under KEY).
handshake() {
  local client_nonce
  client_nonce=$(nonce)
  send "{\"v\":2,\"type\":\"hello\",\"nonce\":\"$client_nonce\"}"
  expect_line challenge
  [[ $LINE =~ \"nonce\":\"([A-Za-z0-9_-]{43})\" ]] || die "the challenge has no 43-character nonce"
  RELAY_NONCE=${BASH_REMATCH[1]}
  RELAY_PROOF=
  if [[ $LINE =~ \"proof\":\"([A-Za-z0-9_-]*)\" ]]; then RELAY_PROOF=${BASH_REMATCH[1]}; fi
  # The relay proves over (client nonce, relay nonce), the client over (relay nonce, client nonce).
  EXPECTED=$(proof "$1" "oauth-relay v2 relay $client_nonce $RELAY_NONCE")
  CLIENT_PROOF=$(proof "$1" "oauth-relay v2 client $RELAY_NONCE $client_nonce")
}

say "1. register over TCP $host:$port without a proof"
open_connection tcp "$host" "$port"
send "$register}"
expect_line error '"code":"unauthorized"'
expect_end
close_connection

say "2. the handshake with a guessed token"
open_connection tcp "$host" "$port"
handshake "a-guessed-token-$(random_state)"
[[ $RELAY_PROOF != "$EXPECTED" ]] || die "the relay proved a token it cannot hold"
say "   the relay's proof does not match the guess (a real client stops here); sending the guessed proof anyway"
send "$register,\"proof\":\"$CLIENT_PROOF\"}"
expect_line error '"code":"unauthorized"'
expect_end
close_connection

say "3. the handshake with the token, then the provider's redirect"
open_connection tcp "$host" "$port"
handshake "$token"
# Before sending anything about the flow: is this the relay that holds our token?
[[ -n $RELAY_PROOF ]] || die "the challenge has no proof: this relay has no coordinator token; refusing to register"
[[ $RELAY_PROOF == "$EXPECTED" ]] || die "the relay's proof is wrong: not the relay, or another token; refusing to register"
say "   the relay's proof checks out"
send "$register,\"proof\":\"$CLIENT_PROOF\"}"
expect_line registered "\"state\":\"$state\""
[[ $LINE =~ \"timeout\":([0-9.e+-]+) ]] || die "the registered line has no timeout"
say "   the relay holds the registration for ${BASH_REMATCH[1]} s"
iss_query=${iss//:/%3A}
callback "code=$code&state=$state&iss=${iss_query//\//%2F}" 200
expect_line callback "\"raw\":{\"code\":\"$code\",\"state\":\"$state\",\"iss\":\"$iss\"}"
expect_end
close_connection

[[ $SENT != *"$token"* ]] || die "the token was sent to the relay"
say "ok: the token was never sent"
