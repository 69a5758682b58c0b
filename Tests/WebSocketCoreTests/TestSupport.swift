import WebSocketCore

/// A seeded, reproducible generator (SplitMix64) for property tests.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Hands out the keys it was given, cycling; makes masked output reproducible.
struct FixedMaskKeys: MaskKeyGenerator {
    var keys: [MaskKey]
    var index = 0
    init(_ keys: MaskKey...) { self.keys = keys }
    mutating func next() -> MaskKey {
        defer { index += 1 }
        return keys[index % keys.count]
    }
}

func hex(_ string: String) -> [UInt8] {
    let digits = string.filter { !$0.isWhitespace }.map { $0 }
    var bytes: [UInt8] = []
    var i = 0
    while i + 1 < digits.count {
        bytes.append(UInt8(String(digits[i...i + 1]), radix: 16)!)
        i += 2
    }
    return bytes
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Builds one frame on the wire, masking with `key` if given.
func wireFrame(
    _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = [], key: MaskKey? = nil
) -> [UInt8] {
    let header = FrameHeader(fin: fin, reservedBits: rsv, opcode: opcode, maskKey: key, payloadLength: payload.count)
    var bytes = [UInt8](repeating: 0, count: header.headerLength + payload.count)
    bytes.withUnsafeMutableBytes { raw in
        let n = FrameEncoder.writeHeader(header, into: raw)
        let body = UnsafeMutableRawBufferPointer(rebasing: raw[n...])
        payload.withUnsafeBytes { body.copyMemory(from: $0) }
        if let key { Masking.apply(key, to: body) }
    }
    return bytes
}

/// A frame as a client would send it to a server (masked with a fixed key).
func clientFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
    wireFrame(opcode, payload, fin: fin, rsv: rsv, key: MaskKey(0x37, 0xFA, 0x21, 0x3D))
}

/// An owned copy of an event, for comparisons.
enum OwnedEvent: Equatable, CustomStringConvertible {
    case message(MessageKind, [UInt8])
    case fragment(MessageKind, [UInt8], isFirst: Bool, isFinal: Bool)
    case ping([UInt8])
    case pong([UInt8])
    case close(CloseStatus)

    init(_ event: Connection.Event) {
        switch event {
        case .message(let kind, let p): self = .message(kind, Array(p))
        case .fragment(let kind, let p, let first, let final): self = .fragment(kind, Array(p), isFirst: first, isFinal: final)
        case .ping(let p): self = .ping(Array(p))
        case .pong(let p): self = .pong(Array(p))
        case .close(let s): self = .close(s)
        }
    }

    var description: String {
        switch self {
        case .message(let k, let p): return "message(\(k), \(p.count) bytes)"
        case .fragment(let k, let p, let f, let l): return "fragment(\(k), \(p.count) bytes, first: \(f), final: \(l))"
        case .ping(let p): return "ping(\(p.count))"
        case .pong(let p): return "pong(\(p.count))"
        case .close(let s): return "close(\(s))"
        }
    }
}

/// The outcome of feeding bytes to a connection.
struct Outcome {
    var events: [OwnedEvent] = []
    var error: ProtocolError? = nil
}

extension Connection {
    /// Feeds `bytes` in chunks of the given sizes (cycled; the whole input at once when empty), collecting events
    /// until the input is consumed or an error is thrown.
    mutating func feed(_ bytes: [UInt8], chunks: [Int] = []) -> Outcome {
        var outcome = Outcome()
        var input = bytes
        var position = 0
        var chunkIndex = 0
        while position < input.count {
            let size = chunks.isEmpty ? input.count - position : max(1, chunks[chunkIndex % chunks.count])
            chunkIndex += 1
            let end = min(input.count, position + size)
            let failed: Bool = input.withUnsafeMutableBytes { raw in
                do throws(ProtocolError) {
                    try receive(UnsafeMutableRawBufferPointer(rebasing: raw[position..<end])) { _, event in
                        outcome.events.append(OwnedEvent(event))
                    }
                    return false
                } catch {
                    outcome.error = error
                    return true
                }
            }
            position = end
            if failed { break }
        }
        return outcome
    }

    /// Drains and returns the pending output.
    mutating func takeOutput() -> [UInt8] {
        withPendingOutput { Array($0) }
    }
}

/// Parses a stream of frames (as the receiving `role`) into (header, payload) pairs, feeding the given chunks.
func parseAll(
    _ bytes: [UInt8], role: Role, chunks: [Int] = [], configuration: FrameParser.Configuration? = nil
) throws(ProtocolError) -> [(FrameHeader, [UInt8])] {
    var parser = FrameParser(configuration: configuration ?? FrameParser.Configuration(role: role))
    var frames: [(FrameHeader, [UInt8])] = []
    var pending: (FrameHeader, [UInt8])? = nil
    var input = bytes
    var position = 0
    var chunkIndex = 0
    var caught: ProtocolError? = nil
    while position < input.count && caught == nil {
        let size = chunks.isEmpty ? input.count : max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(input.count, position + size)
        input.withUnsafeMutableBytes { raw in
            var offset = position
            while offset <= end {
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])
                do throws(ProtocolError) {
                    let (consumed, item) = try parser.parse(slice)
                    let base = offset
                    offset += consumed
                    guard let item else { break }
                    switch item {
                    case .frame(let header, let range):
                        frames.append((header, Array(raw[(base + range.lowerBound)..<(base + range.upperBound)])))
                    case .header(let header):
                        pending = (header, [])
                    case .payload(let range, let isFinal):
                        pending?.1 += raw[(base + range.lowerBound)..<(base + range.upperBound)]
                        if isFinal, let p = pending {
                            frames.append(p)
                            pending = nil
                        }
                    }
                } catch {
                    caught = error
                    break
                }
            }
        }
        position = end
    }
    if let caught { throw caught }
    return frames
}
