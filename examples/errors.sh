#!/usr/bin/env bash
# What the coordinator answers to a bad first line: exactly one `error` line with a stable code, then it
# ends the connection; the relay keeps serving everyone else. Each case uses its own connection to the
# Unix socket. Also: a connection that says nothing is ended as `idle` after 3 s, and a registration
# nobody calls back ends with `timeout` once its time is up.
# Prints the lines the relay sent on stdout and a narration on stderr; exits 0 when every answer has the
# code docs/protocol.md documents, 1 otherwise.
#
#   OAUTH_SOCKET_PATH=/run/oauth-relay/relay.sock examples/errors.sh
#
# Environment: OAUTH_SOCKET_PATH (default: the relay's default, /tmp/poast-relay-oauth.sock),
# READ_TIMEOUT (seconds to wait for a line, 10), CONNECT_WITH (socat or nc).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

socket=${OAUTH_SOCKET_PATH:-/tmp/poast-relay-oauth.sock}

# sent line → expected code
cases=(
  'hello' protocol                                                 # not JSON
  '[1,2]' protocol                                                 # not an object
  '{"v":2,"type":"subscribe"}' protocol                            # unknown type
  '{"v":1,"type":"register","state":"x"}' unsupported_version      # a version 1 client
  '{"type":"register","state":"x"}' unsupported_version            # no version
  '{"v":2,"type":"hello","nonce":"short"}' protocol                # a nonce that is not 32 bytes
  '{"v":2,"type":"register","state":""}' protocol                  # an empty state
  '{"v":2,"type":"register","state":"x","timeout":"60"}' protocol  # a timeout that is not a number
)
for ((i = 0; i < ${#cases[@]}; i += 2)); do
  open_connection unix "$socket"
  send "${cases[i]}"
  expect_line error "\"code\":\"${cases[i + 1]}\""
  expect_end
  close_connection
done

say "a connection that sends nothing"
open_connection unix "$socket"
expect_line error '"code":"idle"'
expect_end
close_connection

say "a registration of half a second that nobody calls back"
open_connection unix "$socket"
send "{\"v\":2,\"type\":\"register\",\"state\":\"$(random_state)\",\"timeout\":0.5}"
expect_line registered '"timeout":0.5'
expect_line error '"code":"timeout"'
expect_end
close_connection
say "ok"
