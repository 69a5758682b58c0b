#!/usr/bin/env bash
# Runs the whole test suite: Swift unit and integration tests, the conformance catalog in both directions
# (our server under test, our client under test), and interop with the Python `websockets` package.
#   scripts/test.sh            everything (section 9 of the catalog capped at 1 MiB messages)
#   WS_CONFORMANCE_FULL=1 scripts/test.sh   section 9 at Autobahn's full sizes (up to 16 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== swift build (release: ws-echo, ws-conformance-client)"
swift build -c release --product ws-echo
swift build -c release --product ws-conformance-client
BIN="$(swift build -c release --show-bin-path)"

echo "== swift test (serial, about 30 s once built)"
swift test --no-parallel  # serial: CPU-heavy cases (16 MiB, deflate) would starve the timing of others on 2 cores

echo "== conformance and interop (pytest)"
export WS_ECHO="$BIN/ws-echo"
export WS_CLIENT_BIN="$BIN/ws-conformance-client"
export WS_SERVER_CMD="$WS_ECHO --port {port}"
export WS_CLIENT_CMD="$WS_CLIENT_BIN --url {url} --agent {agent}"
export WS_SERVER_DEFLATE_CMD="$WS_ECHO --port {port} --deflate"
export WS_CLIENT_DEFLATE_CMD="$WS_CLIENT_BIN --url {url} --agent {agent} --deflate"
python3 -m pytest -q Tests/Conformance Tests/Interop
