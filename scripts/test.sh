#!/usr/bin/env bash
# Runs the whole test suite: Swift unit and integration tests, the README's programs, the conformance catalog
# in both directions (our server under test, our client under test), and interop with Python's `websockets`.
# One build configuration (debug) serves all of them: the package is built once.
#   scripts/test.sh            everything (section 9 of the catalog capped at 1 MiB messages)
#   WS_CONFORMANCE_FULL=1 scripts/test.sh   section 9 at Autobahn's full sizes (up to 16 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
stage_start=$(date +%s)
stage() {  # ends the current stage (printing its duration) and names the next one
    local now
    now=$(date +%s)
    echo "== (that took $((now - stage_start))s) $*"
    stage_start=$now
}

bash scripts/setup.sh
stage "setup done. Next: swift build --build-tests (debug: one build for every test below)"
swift build --build-tests
BIN="$(swift build --show-bin-path)"

stage "build done. Next: swift test (serial: CPU-heavy cases would starve the timing of others on 2 cores)"
swift test --skip-build --no-parallel

stage "swift test done. Next: README programs, conformance and interop (pytest)"
export WS_BIN_DIR="$BIN"
export WS_ECHO="$BIN/ws-echo"
export WS_CLIENT_BIN="$BIN/ws-conformance-client"
export WS_SERVER_CMD="$WS_ECHO --port {port}"
export WS_CLIENT_CMD="$WS_CLIENT_BIN --url {url} --agent {agent}"
export WS_SERVER_DEFLATE_CMD="$WS_ECHO --port {port} --deflate"
export WS_CLIENT_DEFLATE_CMD="$WS_CLIENT_BIN --url {url} --agent {agent} --deflate"
python3 -m pytest -q Tests/Readme Tests/Conformance Tests/Interop Tests/Client Tests/HubProtocol Tests/SSE Tests/HTTP2 Tests/Hubs
stage "pytest done"
