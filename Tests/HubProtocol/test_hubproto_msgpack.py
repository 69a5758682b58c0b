"""Cross-checks of the HubProtocol module against third-party implementations: Python's `msgpack` package (PyPI)
and `json` module. Python builds hub messages and values, packs them, and `hubproto-vectors` (a filter over our
decoders and encoders, Tests/HubProtocolVectors) answers with its decoding re-encoded in MessagePack and JSON.
Both directions are checked: our decoder reads msgpack's bytes, and msgpack reads ours, byte for byte where both
use the shortest formats (they do for everything generated here)."""

import base64
import json
import os
import random
import struct
import subprocess
from pathlib import Path

import msgpack
import pytest

ROOT = Path(__file__).resolve().parents[2]
RS = b"\x1e"


def find_tool() -> str | None:
    directory = os.environ.get("WS_BIN_DIR")
    candidates = [Path(directory) / "hubproto-vectors"] if directory else []
    candidates += [ROOT / ".build" / config / "hubproto-vectors" for config in ("debug", "release")]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def tool():
    path = find_tool()
    if not path:
        pytest.skip("hubproto-vectors not found: set WS_BIN_DIR or swift build --product hubproto-vectors")

    def ask(requests: list[tuple[str, bytes]]) -> list[list[str]]:
        text = "".join(f"{mode} {payload.hex()}\n" for mode, payload in requests)
        result = subprocess.run([path], input=text, capture_output=True, text=True, timeout=60, check=True)
        lines = result.stdout.splitlines()
        assert len(lines) == len(requests), result.stderr
        return [line.split(" ") for line in lines]

    return ask


def varint(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(*bodies: bytes) -> bytes:
    return b"".join(varint(len(body)) + body for body in bodies)


# Random values and messages (seeded: a failure names its seed and index).

def random_string(rng: random.Random) -> str:
    alphabet = "abcXYZ019 _-\"\\/\n\t\x01\x1eé€😀中"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 3, 8, 40, 300])))


def random_value(rng: random.Random, depth: int = 0, binary: bool = True):
    kinds = ["nil", "bool", "int", "neg", "big", "float", "str"] + (["bin"] if binary else [])
    if depth < 3:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "nil":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
                           rng.randrange(0, 2**64)])
    if kind == "neg":
        return rng.choice([-1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
                           -rng.randrange(1, 2**63)])
    if kind == "big":
        return rng.randrange(-2**63, 2**63)
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e-7, 1e20, 3.141592653589793, 2.0, -0.0, 5e-324, 1.7976931348623157e308,
                           rng.uniform(-1e6, 1e6)])
    if kind == "str":
        return random_string(rng)
    if kind == "bin":
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 300])))
    if kind == "list":
        return [random_value(rng, depth + 1, binary) for _ in range(rng.choice([0, 1, 2, 5, 20]))]
    keys = sorted({random_string(rng) for _ in range(rng.choice([0, 1, 3, 6]))})
    return {key: random_value(rng, depth + 1, binary) for key in keys}


def random_headers(rng: random.Random) -> dict:
    if rng.random() < 0.6:
        return {}
    return {key: random_string(rng) for key in sorted({random_string(rng) for _ in range(rng.randrange(1, 4))})}


def random_message(rng: random.Random) -> list:
    kind = rng.randrange(1, 10)
    headers = random_headers(rng)
    ident = "id" + str(rng.randrange(10**6))
    args = [random_value(rng) for _ in range(rng.choice([0, 1, 2, 4]))]
    streams = ["s" + str(i) for i in range(rng.choice([0, 0, 1, 3]))]
    if kind == 1:
        return [1, headers, ident if rng.random() < 0.7 else None, random_string(rng), args, streams]
    if kind == 2:
        return [2, headers, ident, random_value(rng)]
    if kind == 3:
        outcome = rng.randrange(1, 4)
        if outcome == 1:
            return [3, headers, ident, 1, random_string(rng)]
        if outcome == 2:
            return [3, headers, ident, 2]
        return [3, headers, ident, 3, random_value(rng)]
    if kind == 4:
        return [4, headers, ident, random_string(rng), args, streams]
    if kind == 5:
        return [5, headers, ident]
    if kind == 6:
        return [6]
    if kind == 7:
        return [7, random_string(rng) if rng.random() < 0.5 else None, rng.random() < 0.5]
    return [kind, rng.choice([0, 1, 36, 200, 70000, 2**40])]


def jsonable(value):
    """The JSON form our encoder gives a MessagePack value: bin becomes base64 (HubProtocol.md, Type Mappings)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def expected_json(message: list) -> dict:
    kind = message[0]
    out: dict = {"type": kind}
    if kind in (1, 2, 3, 4, 5) and message[1]:
        out["headers"] = message[1]
    if kind in (1, 4):
        if message[2] is not None:
            out["invocationId"] = message[2]
        out["target"] = message[3]
        out["arguments"] = jsonable(message[4])
        if message[5]:
            out["streamIds"] = message[5]
    elif kind == 2:
        out["invocationId"] = message[2]
        out["item"] = jsonable(message[3])
    elif kind == 3:
        out["invocationId"] = message[2]
        if message[3] == 1:
            out["error"] = message[4]
        elif message[3] == 3:
            out["result"] = jsonable(message[4])
    elif kind == 5:
        out["invocationId"] = message[2]
    elif kind == 7:
        if message[1] is not None:
            out["error"] = message[1]
        if message[2]:
            out["allowReconnect"] = True
    elif kind in (8, 9):
        out["sequenceId"] = message[1]
    return out


def split_json(data: bytes) -> list:
    assert data.endswith(RS)
    return [json.loads(part) for part in data[:-1].split(RS)]


def split_msgpack(data: bytes) -> list:
    """Our frames, parsed with msgpack's own streaming Unpacker after removing the VarInt prefixes."""
    out, offset = [], 0
    while offset < len(data):
        length, shift = 0, 0
        while True:
            byte = data[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out.append(data[offset:offset + length])
        offset += length
    return out


@pytest.mark.parametrize("seed", range(4))
def test_msgpack_frames_from_python_decode_and_reencode_identically(tool, seed):
    rng = random.Random(seed)
    frames, expected = [], []
    for _ in range(60):
        messages = [random_message(rng) for _ in range(rng.choice([1, 1, 2, 5]))]
        bodies = [msgpack.packb(m, use_bin_type=True) for m in messages]
        frames.append(("msgpack", frame(*bodies)))
        expected.append(messages)
    for index, (answer, messages) in enumerate(zip(tool(frames), expected)):
        assert answer[0] == "ok", (seed, index, answer, messages)
        ours = bytes.fromhex(answer[1])
        # msgpack reads our bytes as the same messages, and its own packing of them is byte-identical to ours.
        bodies = split_msgpack(ours)
        assert [msgpack.unpackb(b, raw=False, strict_map_key=False) for b in bodies] == messages, (seed, index)
        assert ours == frame(*[msgpack.packb(m, use_bin_type=True) for m in messages]), (seed, index)
        # Python's json reads our JSON encoding of the same messages.
        assert split_json(bytes.fromhex(answer[2])) == [expected_json(m) for m in messages], (seed, index)


@pytest.mark.parametrize("seed", range(3))
def test_json_frames_from_python_decode_to_the_same_msgpack(tool, seed):
    rng = random.Random(100 + seed)
    requests, expected = [], []
    for _ in range(60):
        messages = []
        for _ in range(rng.choice([1, 2, 4])):
            message = random_message(rng)
            # No bin in JSON (it would come back as a string); bigger than Int64 integers stay (exact as uint).
            message = msgpack.unpackb(msgpack.packb(jsonable(message)), raw=False)
            messages.append(message)
        text = b"".join(json.dumps(expected_json(m), ensure_ascii=rng.random() < 0.5).encode() + RS
                        for m in messages)
        requests.append(("json", text))
        expected.append(messages)
    for index, (answer, messages) in enumerate(zip(tool(requests), expected)):
        assert answer[0] == "ok", (seed, index, answer)
        ours = split_msgpack(bytes.fromhex(answer[1]))
        decoded = [msgpack.unpackb(b, raw=False) for b in ours]
        normalized = [m[:] for m in messages]
        assert decoded == normalized, (seed, index)


@pytest.mark.parametrize("seed", range(3))
def test_values_from_python_reencode_byte_identically(tool, seed):
    rng = random.Random(200 + seed)
    requests = []
    for _ in range(150):
        value = random_value(rng)
        requests.append(msgpack.packb(value, use_bin_type=True))
    # float 32, extension types, non-string map keys
    requests.append(msgpack.packb([1.5, -0.25, 3.4028234663852886e38], use_single_float=True))
    requests.append(msgpack.packb([msgpack.ExtType(1, b"x"), msgpack.Timestamp(1, 5), msgpack.ExtType(0, b"12345678"),
                                   msgpack.ExtType(5, b"abc"), msgpack.ExtType(127, bytes(300))]))
    requests.append(msgpack.packb({1: "a", 2: [None]}, strict_types=False))
    answers = tool([("value", r) for r in requests])
    for index, (answer, packed) in enumerate(zip(answers, requests)):
        assert answer == ["ok", packed.hex()], (seed, index)
    assert struct.unpack(">f", bytes.fromhex(answers[-3][1])[2:6])[0] == 1.5


# Bad input at the codec level (issue 15, "Bad input"): each gets its typed error.

def test_msgpack_bad_input_errors(tool):
    cases = [
        (b"\x80\x80\x80\x80\x80\x01" + b"\x91\x06", "invalidVarInt"),   # 6-byte length prefix
        (b"\xff\xff\xff\xff\x0f", "invalidVarInt"),                    # above 2^31 - 1
        (b"\x80\x80", "truncated"),                                    # prefix cut short
        (b"\x05\x95\x03", "truncated"),                                # body cut short
        (varint(40000) + bytes(40000), "messageTooLarge"),             # above 32 KiB
        (frame(msgpack.packb([10])), "unknownMessageType"),
        (frame(b"\xc1"), "invalidMessage"),
        (frame(b"\x92\xc1\x00"), "malformedMessagePack"),
        (frame(b"\xdd\xff\xff\xff\xff"), "collectionTooLarge"),       # 2^32 - 1 elements claimed
        (frame(b"\x91\xdd\x00\x00\x10\x00"), "truncated"),             # 4096 claimed, none there
        (frame(msgpack.packb([3, {}, "x", 4])), "invalidResultKind"),
        (frame(msgpack.packb([1, {}, "x", 5, []])), "wrongFieldType"),
        (frame(msgpack.packb([1, {}, "x", "t"])), "invalidMessage"),
        (frame(msgpack.packb([2, {"a": 1}, "x", 1])), "wrongFieldType"),
        (frame(b"\x91\xa2\xff\xfe"), "invalidUTF8"),
        (frame(msgpack.packb([6]) + b"\x00"), "trailingBytes"),
        (frame(b"\x91" * 70 + b"\x06"), "depthLimitExceeded"),
    ]
    answers = tool([("msgpack", data) for data, _ in cases])
    for (data, code), answer in zip(cases, answers):
        assert answer == ["error", code], (data[:16].hex(), answer)


def test_json_bad_input_errors(tool):
    cases = [
        (b'{"type":6}', "missingRecordSeparator"),
        (b'{"type":6}\x1e{"type":6}', "missingRecordSeparator"),
        (b"", "missingRecordSeparator"),
        (b"\x1e", "emptyMessage"),
        (b'{"type":6,}\x1e', "malformedJSON"),
        (b'{"type":1,"target":"x","arguments":[01]}\x1e', "malformedJSON"),
        (b'{"type":42}\x1e', "unknownMessageType"),
        (b'{"target":"x"}\x1e', "missingField"),
        (b'{"type":1,"arguments":[]}\x1e', "missingField"),
        (b'{"type":1,"target":7,"arguments":[]}\x1e', "wrongFieldType"),
        (b'{"type":3,"invocationId":"1","result":1,"error":"e"}\x1e', "resultAndError"),
        (b'{"type":"1"}\x1e', "wrongFieldType"),
        (b'[1]\x1e', "invalidMessage"),
        (b'{"type":6,"type":6}\x1e', "duplicateKey"),
        (b'{"type":2,"invocationId":"1","item":1e999}\x1e', "numberOutOfRange"),
        (b'{"type":2,"invocationId":"\xff","item":1}\x1e', "invalidUTF8"),
        (b'{"type":2,"invocationId":"\\ud800","item":1}\x1e', "invalidUTF8"),
        (b'{"type":2,"invocationId":"1","item":' + b"[" * 70 + b"]" * 70 + b"}\x1e", "depthLimitExceeded"),
        (b'{"type":2,"invocationId":"1","item":"' + b"a" * 40000 + b'"}\x1e', "messageTooLarge"),
    ]
    answers = tool([("json", data) for data, _ in cases])
    for (data, code), answer in zip(cases, answers):
        assert answer == ["error", code], (data[:40], answer)


def test_json_unknown_fields_are_ignored_and_python_json_reads_our_output(tool):
    text = b'{"type":1,"target":"Send","arguments":[42,"Test"],"extra":{"x":[1]},"invocationId":"123"}\x1e'
    [answer] = tool([("json", text)])
    assert answer[0] == "ok"
    assert split_json(bytes.fromhex(answer[2])) == [
        {"type": 1, "invocationId": "123", "target": "Send", "arguments": [42, "Test"]}]
    assert msgpack.unpackb(split_msgpack(bytes.fromhex(answer[1]))[0]) == [1, {}, "123", "Send", [42, "Test"], []]


def test_handshake(tool):
    requests = [
        json.dumps({"protocol": "json", "version": 1}).encode() + RS,
        b'{"protocol":"messagepack","version":0}\x1e',
        b'{"protocol":"messagepack","version":2}\x1e\x02\x91\x06',
        b'{"protocol":"xml","version":1}\x1e',
        b'{"protocol":"json","version":3}\x1e',
        b'{"protocol":"json","version":1}',
        b'{"protocol":"json"}\x1e',
    ]
    assert tool([("handshake", r) for r in requests]) == [
        ["ok", "json", "1", str(len(requests[0]))],
        ["ok", "messagepack", "0", str(len(requests[1]))],
        ["ok", "messagepack", "2", str(len(requests[2]) - 3)],
        ["error", "unsupportedProtocol"],
        ["error", "unsupportedVersion"],
        ["wait"],
        ["error", "missingField"],
    ]
