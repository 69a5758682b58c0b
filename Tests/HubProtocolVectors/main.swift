// hubproto-vectors: a filter that lets Tests/HubProtocol (pytest) check the HubProtocol module against Python's
// `msgpack` package and `json` module. One request per input line, one answer per output line:
//
//   value <hex>     a MessagePack value      -> "ok <hex of our re-encoding>" | "error <code>"
//   msgpack <hex>   a MessagePack hub frame  -> "ok <hex of our MessagePack re-encoding> <hex of our JSON encoding>"
//   json <hex>      a JSON hub frame         -> same as msgpack
//   handshake <hex> a handshake request      -> "ok <protocol> <version> <remainder offset>" | "wait" | "error <code>"
//
// Limits are the defaults (32 KiB messages, depth 64, 16 384 elements).
import HubProtocol

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return text
}

func unhex(_ text: Substring) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(utf8.count / 2)
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var index = 0
    while index < utf8.count {
        guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}

func reencode(_ messages: [HubMessage]) -> String {
    var messagePack: [UInt8] = []
    var json: [UInt8] = []
    do {
        for message in messages {
            try MessagePackHubProtocol().encode(message, into: &messagePack)
            try JSONHubProtocol().encode(message, into: &json)
        }
    } catch {
        return "error \(error.code)"
    }
    return "ok \(hex(messagePack)) \(hex(json))"
}

func answer(_ line: Substring) -> String {
    let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, let bytes = unhex(parts[1]) else { return "error badRequest" }
    do throws(HubProtocolError) {
        switch parts[0] {
        case "value":
            return "ok \(hex(try MessagePackValue(decoding: bytes).encoded()))"
        case "msgpack":
            return reencode(try MessagePackHubProtocol().decode(frame: bytes))
        case "json":
            return reencode(try JSONHubProtocol().decode(frame: bytes))
        case "handshake":
            guard let (request, offset) = try HandshakeRequest.parse(bytes) else { return "wait" }
            try request.validate()
            return "ok \(request.protocolName) \(request.version) \(offset)"
        default:
            return "error badRequest"
        }
    } catch {
        return "error \(error.code)"
    }
}

while let line = readLine(strippingNewline: true) {
    print(answer(line[...]))
}
