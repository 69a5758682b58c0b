#!/usr/bin/env bash
# Installs what the build and the test suite need, and nothing else. Idempotent: present packages are skipped.
#   System packages (Debian/Ubuntu, with apt-get; needs root, or sudo when run as another user):
#     zlib1g-dev  zlib headers for permessage-deflate (the only C library the package links)
#     openssl     the CLI that makes throwaway TLS certificates in the tests
#     python3-pip when pip is missing
#     tinyproxy, microsocks  an HTTP CONNECT and a SOCKS5 proxy for the client's proxy tests
#     chromium    headless browser for the browser interop tests (Tests/browser.py drives it over DevTools)
#     redis-server  a real Redis for the RedisClient tests (started on 127.0.0.1 per test, stopped by PID)
#   Python packages (Tests/requirements.txt, with pip): pytest and websockets, for the conformance harness and
#     the interop tests; launchdarkly-eventsource, sse-starlette and uvicorn for the Server-Sent Events interop.
# Without apt-get (macOS, other Linux distributions) nothing is installed: macOS has zlib and openssl already;
# elsewhere install the zlib development headers and openssl with your package manager, then rerun this.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if command -v dpkg >/dev/null 2>&1; then
    dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
fi
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# tinyproxy (HTTP CONNECT) and microsocks (SOCKS5): real proxies for the client's proxy tests.
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need_apt+=(tinyproxy)
command -v microsocks >/dev/null 2>&1 || need_apt+=(microsocks)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        echo "== apt-get install ${need_apt[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
    else
        echo "!! missing: ${need_apt[*]} (no apt-get here: install them with your package manager)" >&2
    fi
fi

requirements="$(dirname "$0")/../Tests/requirements.txt"
# A Debian system Python refuses pip installs (PEP 668); a pyenv or venv Python does not.
python3 -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$requirements"
