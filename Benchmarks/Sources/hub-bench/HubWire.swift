import BenchSupport

// The few hub messages hub-bench writes and reads (HubProtocol.md in dotnet/aspnetcore src/SignalR/docs/specs),
// written by hand so that the load generator costs little and shares no code with the server it measures:
// JSON records end with 0x1E; MessagePack messages are arrays after a varint length prefix.

/// What the load generator understands of a server message.
enum ServerMessage {
    /// Completion (type 3): the invocation ID as a number (hub-bench's IDs are decimal counters), and the
    /// result when it is an integer.
    case completion(id: UInt64, result: Int64?)
    /// Completion with an error.
    case failure(id: UInt64, error: String)
    /// Invocation (type 1) of `send` with one integer argument.
    case send(Int64)
    /// Ping (type 6) and any other message the benchmark does not act on.
    case ignored
    /// Close (type 7), with its error if any.
    case close(String)
}

enum HubWire {
    static let recordSeparator: UInt8 = 0x1E

    /// The handshake request (always JSON text, then 0x1E).
    static func handshake(_ hubProtocol: Options.HubProtocol) -> [UInt8] {
        Array("{\"protocol\":\"\(hubProtocol.rawValue)\",\"version\":1}\u{1E}".utf8)
    }

    /// A Ping message.
    static func ping(_ hubProtocol: Options.HubProtocol) -> [UInt8] {
        switch hubProtocol {
        case .json: return Array("{\"type\":6}\u{1E}".utf8)
        case .messagepack: return [0x02, 0x91, 0x06]
        }
    }

    /// Appends an Invocation of `target` with one argument (`integer`, or `text` when non-nil), with invocation
    /// ID `id` (decimal) unless it is nil (a non-blocking invocation: no Completion).
    static func appendInvocation(
        _ hubProtocol: Options.HubProtocol, id: UInt64?, target: StaticString, integer: Int64, text: [UInt8]?,
        to out: inout [UInt8]
    ) {
        switch hubProtocol {
        case .json:
            out.append(contentsOf: #"{"type":1,"#.utf8)
            if let id {
                out.append(contentsOf: #""invocationId":""#.utf8)
                appendDecimal(Int64(id), to: &out)
                out.append(contentsOf: #"","#.utf8)
            }
            out.append(contentsOf: #""target":""#.utf8)
            target.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: #"","arguments":["#.utf8)
            if let text {
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: text)
                out.append(UInt8(ascii: "\""))
            } else {
                appendDecimal(integer, to: &out)
            }
            out.append(contentsOf: "]}\u{1E}".utf8)
        case .messagepack:
            var body: [UInt8] = [0x95, 0x01, 0x80]  // [1, {}, id, target, [argument]]
            if let id {
                var digits: [UInt8] = []
                appendDecimal(Int64(id), to: &digits)
                appendString(digits, to: &body)
            } else {
                body.append(0xC0)
            }
            target.withUTF8Buffer { appendString(Array($0), to: &body) }
            body.append(0x91)
            if let text { appendString(text, to: &body) } else { appendInteger(integer, to: &body) }
            var length = body.count
            repeat {
                out.append(UInt8(length & 0x7F) | (length > 0x7F ? 0x80 : 0))
                length >>= 7
            } while length > 0
            out.append(contentsOf: body)
        }
    }

    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: [UInt8] = []
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        out.append(contentsOf: digits.reversed())
    }

    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        let count = bytes.count
        if count < 32 {
            out.append(0xA0 | UInt8(count))
        } else if count < 256 {
            out.append(contentsOf: [0xD9, UInt8(count)])
        } else if count < 65536 {
            out.append(contentsOf: [0xDA, UInt8(count >> 8), UInt8(count & 0xFF)])
        } else {
            out.append(0xDB)
            for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: count >> shift)) }
        }
        out.append(contentsOf: bytes)
    }

    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value >= 0 && value < 128 {
            out.append(UInt8(value))
        } else {
            out.append(0xD3)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> shift)) }
        }
    }

    // MARK: - Reading

    /// Calls `handle` for every hub message in one WebSocket message's payload.
    static func forEachMessage(
        _ hubProtocol: Options.HubProtocol, in payload: UnsafeRawBufferPointer, _ handle: (ServerMessage) -> Void
    ) {
        switch hubProtocol {
        case .json:
            var start = 0
            for i in 0..<payload.count where payload[i] == recordSeparator {
                handle(parseJSON(UnsafeRawBufferPointer(rebasing: payload[start..<i])))
                start = i + 1
            }
            guard start == payload.count else { fail("a JSON hub message without its 0x1E terminator") }
        case .messagepack:
            var offset = 0
            while offset < payload.count {
                var length = 0
                var shift = 0
                while true {
                    guard offset < payload.count, shift <= 28 else { fail("a bad MessagePack length prefix") }
                    let byte = payload[offset]
                    offset += 1
                    length |= Int(byte & 0x7F) << shift
                    shift += 7
                    if byte & 0x80 == 0 { break }
                }
                guard length <= payload.count - offset else { fail("a MessagePack message longer than its frame") }
                var reader = MessagePackReader(bytes: UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]))
                handle(reader.serverMessage())
                offset += length
            }
        }
    }

    /// Reads the fields the benchmark needs from one JSON record (written by the server: no whitespace games,
    /// but key order is not assumed).
    static func parseJSON(_ record: UnsafeRawBufferPointer) -> ServerMessage {
        guard let type = integer(after: #""type":"#, in: record) else { fail("a JSON hub message without type") }
        switch type {
        case 1:
            guard let target = find(#""target":"send""#, in: record) else { return .ignored }
            _ = target
            guard let value = integer(after: #""arguments":["#, in: record) else { fail("send without argument") }
            return .send(value)
        case 3:
            guard let id = integer(after: #""invocationId":""#, in: record), id >= 0 else {
                fail("a Completion without a numeric invocation ID")
            }
            if let start = find(#""error":""#, in: record) {
                let rest = record[(start + 9)...]
                let text = String(decoding: rest.prefix { $0 != UInt8(ascii: "\"") }, as: UTF8.self)
                return .failure(id: UInt64(id), error: text)
            }
            return .completion(id: UInt64(id), result: integer(after: #""result":"#, in: record))
        case 7:
            if let start = find(#""error":""#, in: record) {
                let rest = record[(start + 9)...]
                return .close(String(decoding: rest.prefix { $0 != UInt8(ascii: "\"") }, as: UTF8.self))
            }
            return .close("")
        default:
            return .ignored
        }
    }

    static func find(_ key: StaticString, in record: UnsafeRawBufferPointer) -> Int? {
        key.withUTF8Buffer { key in
            guard record.count >= key.count, let first = key.first else { return nil }
            var i = 0
            while i <= record.count - key.count {
                if record[i] == first {
                    var j = 1
                    while j < key.count && record[i + j] == key[j] { j += 1 }
                    if j == key.count { return i }
                }
                i += 1
            }
            return nil
        }
    }

    static func integer(after key: StaticString, in record: UnsafeRawBufferPointer) -> Int64? {
        guard let start = find(key, in: record) else { return nil }
        var i = start + key.utf8CodeUnitCount
        var negative = false
        if i < record.count && record[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var value: Int64 = 0
        var digits = 0
        while i < record.count, record[i] >= UInt8(ascii: "0"), record[i] <= UInt8(ascii: "9") {
            value = value &* 10 &+ Int64(record[i] - UInt8(ascii: "0"))
            digits += 1
            i += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}

/// Just enough MessagePack to read a server's hub messages.
struct MessagePackReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { fail("a truncated MessagePack message") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bigEndian(_ count: Int) -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<count { value = value << 8 | UInt64(byte()) }
        return value
    }

    mutating func arrayCount() -> Int {
        let b = byte()
        switch b {
        case 0x90...0x9F: return Int(b & 0x0F)
        case 0xDC: return Int(bigEndian(2))
        case 0xDD: return Int(bigEndian(4))
        default: fail("expected a MessagePack array, found 0x\(String(b, radix: 16))")
        }
    }

    /// An integer, or nil (and nothing consumed) when the next value is not one.
    mutating func integer() -> Int64? {
        guard offset < bytes.count else { return nil }
        let b = bytes[offset]
        switch b {
        case 0x00...0x7F:
            offset += 1
            return Int64(b)
        case 0xE0...0xFF:
            offset += 1
            return Int64(Int8(bitPattern: b))
        case 0xCC, 0xCD, 0xCE, 0xCF:
            offset += 1
            return Int64(truncatingIfNeeded: bigEndian(1 << Int(b - 0xCC)))
        case 0xD0, 0xD1, 0xD2, 0xD3:
            offset += 1
            let width = 1 << Int(b - 0xD0)
            let raw = bigEndian(width)
            let shift = UInt64(64 - 8 * width)
            return Int64(bitPattern: raw << shift) >> Int64(shift)
        default:
            return nil
        }
    }

    /// A string's bytes, or nil for nil.
    mutating func string() -> UnsafeRawBufferPointer? {
        let b = byte()
        let count: Int
        switch b {
        case 0xC0: return nil
        case 0xA0...0xBF: count = Int(b & 0x1F)
        case 0xD9: count = Int(bigEndian(1))
        case 0xDA: count = Int(bigEndian(2))
        case 0xDB: count = Int(bigEndian(4))
        default: fail("expected a MessagePack string, found 0x\(String(b, radix: 16))")
        }
        guard count <= bytes.count - offset else { fail("a truncated MessagePack string") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    /// Skips one value of any type.
    mutating func skip() {
        if integer() != nil { return }
        let b = byte()
        switch b {
        case 0xC0, 0xC2, 0xC3: return
        case 0xA0...0xBF: offset += Int(b & 0x1F)
        case 0xD9, 0xC4: offset += Int(bigEndian(1))
        case 0xDA, 0xC5: offset += Int(bigEndian(2))
        case 0xDB, 0xC6: offset += Int(bigEndian(4))
        case 0xCA: offset += 4
        case 0xCB: offset += 8
        case 0x90...0x9F, 0xDC, 0xDD:
            offset -= 1
            for _ in 0..<arrayCount() { skip() }
        case 0x80...0x8F, 0xDE, 0xDF:
            let count: Int
            if b <= 0x8F { count = Int(b & 0x0F) } else { count = Int(bigEndian(b == 0xDE ? 2 : 4)) }
            for _ in 0..<(2 * count) { skip() }
        default: fail("unsupported MessagePack type 0x\(String(b, radix: 16))")
        }
        guard offset <= bytes.count else { fail("a truncated MessagePack value") }
    }

    mutating func serverMessage() -> ServerMessage {
        let count = arrayCount()
        guard count >= 1, let type = integer() else { fail("a MessagePack hub message without type") }
        switch type {
        case 1:  // [1, headers, invocationId, target, arguments, streamIds?]
            skip()
            skip()
            guard let target = string(), target.elementsEqual("send".utf8) else { return .ignored }
            guard arrayCount() >= 1, let value = integer() else { fail("send without an integer argument") }
            return .send(value)
        case 3:  // [3, headers, invocationId, resultKind, result?]
            skip()
            guard let id = string().flatMap({ UInt64(String(decoding: $0, as: UTF8.self)) }) else {
                fail("a Completion without a numeric invocation ID")
            }
            guard let kind = integer() else { fail("a Completion without result kind") }
            switch kind {
            case 1:
                let error = string().map { String(decoding: $0, as: UTF8.self) } ?? ""
                return .failure(id: id, error: error)
            case 2: return .completion(id: id, result: nil)
            default: return .completion(id: id, result: integer())
            }
        case 7:  // [7, error, allowReconnect?]
            let error = count >= 2 ? string().map { String(decoding: $0, as: UTF8.self) } ?? "" : ""
            return .close(error)
        default:
            return .ignored
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
