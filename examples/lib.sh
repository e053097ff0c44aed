# Shared by the example scripts; sourced, not run.
#
# One coordinator connection at a time. Over TCP, bash's own /dev/tcp; over the Unix socket, socat (Debian
# package `socat`), or OpenBSD netcat (`nc -U`, package `netcat-openbsd`) when socat is missing
# (CONNECT_WITH=socat or CONNECT_WITH=nc chooses). Over the Unix socket the connection's ends are two fifos.
# Either way a script writes lines with `send`, reads the relay's lines one at a time with `receive`, and
# keeps its sending side open while it waits: closing it would cancel the registration
# (docs/protocol.md, "Sequence").

set -euo pipefail
trap '' PIPE # a relay that went away makes a write fail with a message instead of killing the script

READ_TIMEOUT=${READ_TIMEOUT:-10} # seconds to wait for one line from the relay
RELAY_URL=${RELAY_URL:-http://127.0.0.1:${PORT:-8000}}
CALLBACK_URL="${RELAY_URL%/}${OAUTH_CALLBACK_PATH:-/oauth/callback}"

CONN_DIR=
CONN_PID=

die() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# Narration goes to stderr; stdout carries only the lines the relay sent.
say() { printf '%s\n' "$*" >&2; }

connector() {
  local tool=${CONNECT_WITH:-}
  if [[ -z $tool ]]; then
    if command -v socat >/dev/null; then tool=socat; elif command -v nc >/dev/null; then tool=nc; fi
  fi
  case $tool in
  socat | nc) command -v "$tool" >/dev/null || die "$tool is not installed" ;;
  "") die "needs socat (apt-get install socat) or OpenBSD netcat (apt-get install netcat-openbsd)" ;;
  *) die "CONNECT_WITH must be socat or nc, not '$tool'" ;;
  esac
  printf '%s' "$tool"
}

# open_connection unix PATH | open_connection tcp HOST PORT: file descriptor 3 writes to the relay, 4 reads.
open_connection() {
  if [[ $1 == tcp ]]; then
    { exec 3<>"/dev/tcp/$2/$3"; } 2>/dev/null || die "cannot connect to $2:$3: is the relay running with OAUTH_USE_TCP=true?"
    exec 4<&3
    CONN_PID=tcp
    return
  fi
  [[ -S $2 ]] || die "no socket at $2: is the relay running, and is OAUTH_SOCKET_PATH the same for both?"
  local tool command
  tool=$(connector)
  case $tool in
  socat) command=(socat -t 0.1 - "UNIX-CONNECT:$2") ;;
  nc) command=(nc -U "$2") ;; # no -N: it would half-close when the script stops writing
  esac
  CONN_DIR=$(mktemp -d)
  mkfifo "$CONN_DIR/to_relay" "$CONN_DIR/from_relay"
  "${command[@]}" <"$CONN_DIR/to_relay" >"$CONN_DIR/from_relay" &
  CONN_PID=$!
  exec 3>"$CONN_DIR/to_relay" 4<"$CONN_DIR/from_relay"
}

close_connection() {
  if [[ -n $CONN_PID ]]; then
    exec 3>&- 4<&-
    [[ $CONN_PID == tcp ]] || wait "$CONN_PID" 2>/dev/null || true
    CONN_PID=
  fi
  if [[ -n $CONN_DIR ]]; then
    rm -rf "$CONN_DIR"
    CONN_DIR=
  fi
}
trap close_connection EXIT

# send LINE: writes one line to the relay (and shows it). Every byte a script sends goes through here, and
# SENT keeps them all, so a script can check what never went out.
SENT=
send() {
  say "→ $1"
  SENT+="$1"$'\n'
  printf '%s\n' "$1" >&3 || die "cannot write to the relay"
}

# Reads one line from the relay into LINE and prints it; fails at the end of the stream.
receive() {
  local status=0
  LINE=
  IFS= read -r -t "$READ_TIMEOUT" LINE <&4 || status=$?
  ((status <= 128)) || die "no line from the relay within ${READ_TIMEOUT} s"
  if ((status == 0)) || [[ -n $LINE ]]; then
    printf '%s\n' "$LINE"
    return 0
  fi
  return 1
}

# expect_end: the relay must send nothing more and end the stream.
expect_end() {
  if receive; then die "expected the end of the stream, got another line"; fi
}

# expect_line TYPE [PATTERN]: reads the next line and checks it is a TYPE message containing PATTERN.
expect_line() {
  receive || die "the relay ended the connection; expected a \"$1\" line"
  [[ $LINE == *"\"type\":\"$1\""* ]] || die "expected a \"$1\" line"
  [[ -z ${2:-} || $LINE == *"$2"* ]] || die "expected $2 in the \"$1\" line"
}

# callback QUERY EXPECTED_STATUS: what the provider's redirect does, played with curl.
callback() {
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' "$CALLBACK_URL?$1") || die "curl failed: $CALLBACK_URL"
  say "GET ${CALLBACK_URL}?$1 → HTTP $status"
  [[ $status == "$2" ]] || die "the callback got HTTP $status, expected $2"
}

# base64url: standard input in base64url without padding (RFC 4648 section 5), as nonces and proofs are.
base64url() { base64 | tr '+/' '-_' | tr -d '=\n'; }

# nonce: 32 random bytes in base64url, 43 characters, for a hello message.
nonce() {
  command -v openssl >/dev/null || die "needs openssl (apt-get install openssl)"
  openssl rand 32 | base64url
}

# proof KEY MESSAGE: HMAC-SHA256 of MESSAGE under KEY (RFC 2104), in base64url; the same as
#   printf '%s' MESSAGE | openssl dgst -sha256 -hmac KEY -binary | base64url
# but built from plain SHA-256 so that the key reaches openssl on its standard input only: with -hmac it
# would be in openssl's command line, which every local user can read (ps, /proc/PID/cmdline).
proof() {
  command -v openssl >/dev/null || die "needs openssl (apt-get install openssl)"
  local key i byte inner ipad='' opad='' hex
  key=$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')
  # A key longer than SHA-256's 64-byte block is hashed first; a shorter one is padded with zeros.
  ((${#key} <= 128)) || key=$(printf '%s' "$1" | openssl dgst -sha256 -binary | od -An -v -tx1 | tr -d ' \n')
  while ((${#key} < 128)); do key+=00; done
  for ((i = 0; i < 128; i += 2)); do
    byte=$((16#${key:i:2}))
    printf -v hex '\\x%02x' $((byte ^ 0x36))
    ipad+=$hex
    printf -v hex '\\x%02x' $((byte ^ 0x5c))
    opad+=$hex
  done
  inner=$({ printf '%b' "$ipad" && printf '%s' "$2"; } | openssl dgst -sha256 -binary | od -An -v -tx1 | tr -d ' \n')
  { printf '%b' "$opad" && printf '%b' "$(printf '%s' "$inner" | sed 's/../\\x&/g')"; } | openssl dgst -sha256 -binary | base64url
}

# A fresh random state: a used one is refused for 10 minutes (state_used).
random_state() { printf 'example-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }

# url_safe NAME VALUE: the examples put values into JSON and URLs without encoding them.
url_safe() {
  [[ $2 =~ ^[A-Za-z0-9._~-]+$ ]] || die "$1 may hold only letters, digits and . _ ~ -"
}
