#!/usr/bin/env python3
"""Writes Tests/Vectors/sha1.txt: SHA-1 digests from Python's hashlib, the reference for our own SHA-1.

Every message length from 0 to 300 bytes (all padding cases: 55, 56, 63, 64, 119, 120 ... bytes) plus 100
further random lengths in 0..300, with bytes from a seeded generator so that re-running gives the same file.
"""
import hashlib
import os
import random

rng = random.Random(6455)
lengths = list(range(301)) + [rng.randint(0, 300) for _ in range(100)]
lines = [
    "# SHA-1 test vectors (FIPS 180-4), digests from Python's hashlib; made by make_sha1_vectors.py.",
    "# One vector per line: LENGTH MESSAGE-HEX DIGEST-HEX (MESSAGE-HEX is \"-\" when empty).",
]
for length in lengths:
    message = bytes(rng.getrandbits(8) for _ in range(length))
    lines.append(f"{length} {message.hex() or '-'} {hashlib.sha1(message).hexdigest()}")
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sha1.txt")
with open(path, "w") as out:
    out.write("\n".join(lines) + "\n")
