"""Fixtures for the HTTP/2 tests: the ws-echo binary, a throw-away TLS certificate and ws-echo processes (the
same fixtures as the interop suite), and this folder on sys.path for `h2peer`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from Interop.conftest import certificate, start_echo, ws_echo_bin  # noqa: E402,F401
