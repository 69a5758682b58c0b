"""Loaded by pytest for every Python suite under Tests/: puts this folder on sys.path so that the suites share
`testprocs` (free ports, waiting for a server process to listen)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
