import WebSocketCore

// Helpers around `WebSocketCore` types, for tests that drive a `Connection` without I/O.

/// Hands out the keys it was given, cycling; makes masked output reproducible.
public struct FixedMaskKeys: MaskKeyGenerator {
    public var keys: [MaskKey]
    public var index = 0
    public init(_ keys: MaskKey...) { self.keys = keys }
    public mutating func next() -> MaskKey {
        defer { self.index += 1 }
        return self.keys[self.index % self.keys.count]
    }
}

/// The bytes of a hex string (whitespace ignored).
public func hex(_ string: String) -> [UInt8] {
    let digits = string.filter { !$0.isWhitespace }.map { $0 }
    var bytes: [UInt8] = []
    var index = 0
    while index + 1 < digits.count {
        bytes.append(UInt8(String(digits[index...index + 1]), radix: 16)!)
        index += 2
    }
    return bytes
}

public func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

extension RawFrame {
    /// A frame with a `WebSocketCore` opcode, reserved bits and mask key.
    public static func bytes(
        _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = [], key: MaskKey? = nil
    ) -> [UInt8] {
        bytes(opcode: opcode.rawValue, payload, fin: fin, rsv: rsv.rawValue, maskKey: key?.bytes)
    }
}

/// A client frame with a `WebSocketCore` opcode (masked with ``RawFrame/testMaskKey``, RFC 6455 §5.3).
public func maskedFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
    maskedFrame(opcode: opcode.rawValue, payload, fin: fin, rsv: rsv.rawValue)
}

/// A server frame with a `WebSocketCore` opcode (unmasked).
public func unmaskedFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
    unmaskedFrame(opcode: opcode.rawValue, payload, fin: fin, rsv: rsv.rawValue)
}

/// An owned copy of a `Connection.Event`, for comparisons.
public enum OwnedEvent: Equatable, CustomStringConvertible, Sendable {
    case message(MessageKind, [UInt8])
    case fragment(MessageKind, [UInt8], isFirst: Bool, isFinal: Bool)
    case ping([UInt8])
    case pong([UInt8])
    case close(CloseStatus)

    public init(_ event: Connection.Event) {
        switch event {
        case .message(let kind, let payload): self = .message(kind, Array(payload))
        case .fragment(let kind, let payload, let first, let final):
            self = .fragment(kind, Array(payload), isFirst: first, isFinal: final)
        case .ping(let payload): self = .ping(Array(payload))
        case .pong(let payload): self = .pong(Array(payload))
        case .close(let status): self = .close(status)
        }
    }

    public var description: String {
        switch self {
        case .message(let kind, let payload): return "message(\(kind), \(payload.count) bytes)"
        case .fragment(let kind, let payload, let first, let final):
            return "fragment(\(kind), \(payload.count) bytes, first: \(first), final: \(final))"
        case .ping(let payload): return "ping(\(payload.count))"
        case .pong(let payload): return "pong(\(payload.count))"
        case .close(let status): return "close(\(status))"
        }
    }
}

/// The outcome of feeding bytes to a connection.
public struct Outcome: Sendable {
    public var events: [OwnedEvent] = []
    public var error: ProtocolError? = nil

    /// The payloads of the whole messages received, in order.
    public var messages: [[UInt8]] {
        self.events.compactMap { event in
            if case .message(_, let payload) = event { return payload }
            return nil
        }
    }
}

extension Connection {
    /// Feeds `bytes` in chunks of the given sizes (cycled; the whole input at once when empty), collecting events
    /// until the input is consumed or an error is thrown.
    public mutating func feed(_ bytes: [UInt8], chunks: [Int] = []) -> Outcome {
        var outcome = Outcome()
        var input = bytes
        var position = 0
        var chunkIndex = 0
        while position < input.count {
            let size = chunks.isEmpty ? input.count - position : max(1, chunks[chunkIndex % chunks.count])
            chunkIndex += 1
            let end = position + min(size, input.count - position)  // `size` may be `Int.max`
            let failed: Bool = input.withUnsafeMutableBytes { raw in
                var slice = UnsafeMutableRawBufferPointer(rebasing: raw[position..<end])
                while true {
                    do throws(ProtocolError) {
                        let (consumed, event) = try self.receive(slice)
                        slice = UnsafeMutableRawBufferPointer(rebasing: slice[consumed...])
                        guard let event else { return false }
                        outcome.events.append(OwnedEvent(event))
                    } catch {
                        outcome.error = error
                        return true
                    }
                }
            }
            position = end
            if failed { break }
        }
        return outcome
    }

    /// Drains and returns the pending output.
    public mutating func takeOutput() -> [UInt8] {
        self.withPendingOutput { Array($0) }
    }
}
