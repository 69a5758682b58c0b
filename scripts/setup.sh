#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine with Swift 6.3 and Python 3.
# Idempotent: already-installed packages are skipped.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

requirements="$(dirname "$0")/../Tests/requirements.txt"
if ! python3 -m pip --version >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip
fi
# A Debian system Python refuses pip installs (PEP 668); a pyenv or venv Python does not.
python3 -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$requirements"
