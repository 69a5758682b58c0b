/// A MessagePack value (https://github.com/msgpack/msgpack/blob/master/spec.md), as the hub protocol's
/// MessagePack encoding carries arguments, items and results.
///
/// Decoding keeps the distinctions the format makes: a negative integer is ``int(_:)``, a non-negative one
/// ``uint(_:)`` only when it does not fit `Int64` and ``int(_:)`` otherwise; float 32 and float 64 stay apart;
/// maps keep their pairs in wire order and may have keys of any type. Equality compares integers by value
/// across ``int(_:)`` and ``uint(_:)``. Encoding always picks the shortest format for a value.
public enum MessagePackValue: Sendable, CustomStringConvertible {
    case `nil`
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Float)
    case double(Double)
    case string(String)
    case binary([UInt8])
    case array([MessagePackValue])
    case map([Pair])
    /// An extension type (-128...127; negative types are reserved, -1 is the timestamp) with its data.
    case ext(type: Int8, data: [UInt8])

    /// One key/value pair of a map.
    public struct Pair: Sendable, Equatable {
        public var key: MessagePackValue
        public var value: MessagePackValue
        public init(_ key: MessagePackValue, _ value: MessagePackValue) {
            self.key = key
            self.value = value
        }
    }

    /// Decodes exactly one value from `bytes`.
    /// - Throws: ``HubProtocolError`` with `.truncated`, `.malformedMessagePack` (reserved byte 0xC1),
    ///   `.invalidUTF8`, `.depthLimitExceeded`, `.collectionTooLarge`, `.trailingBytes`, or `.messageTooLarge`
    ///   when `bytes` is longer than `limits.maximumMessageSize`.
    public init(decoding bytes: some Collection<UInt8>, limits: HubProtocolLimits = .default) throws(HubProtocolError) {
        guard bytes.count <= limits.maximumMessageSize else {
            throw HubProtocolError(.messageTooLarge, "\(bytes.count) bytes, limit \(limits.maximumMessageSize)")
        }
        let result: Result<MessagePackValue, HubProtocolError> =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(HubProtocolError) in try MessagePackReader.decodeOne(buffer, limits: limits) }
            }
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(HubProtocolError) in try MessagePackReader.decodeOne(buffer, limits: limits) }
            }
        self = try result.get()
    }

    /// Appends the encoding of the value to `buffer`. Never fails: every value has an encoding (strings,
    /// binaries and collections longer than 2^32 - 1 cannot be built in memory in practice; they trap).
    public func write(into buffer: inout [UInt8]) {
        MessagePackWriter.write(self, into: &buffer)
    }

    /// The encoding of the value.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        MessagePackWriter.write(self, into: &bytes)
        return bytes
    }

    public var description: String {
        switch self {
        case .nil: return "nil"
        case .bool(let value): return "\(value)"
        case .int(let value): return "\(value)"
        case .uint(let value): return "\(value)"
        case .float(let value): return "\(value)f"
        case .double(let value): return "\(value)"
        case .string(let value): return "\"\(value)\""
        case .binary(let value): return "bin(\(value.count) bytes)"
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        case .map(let pairs): return "{" + pairs.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .ext(let type, let data): return "ext(\(type), \(data.count) bytes)"
        }
    }

    /// The value of string key `key` in a map; nil for other values or absent keys.
    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }
}

extension MessagePackValue: Equatable {
    public static func == (lhs: MessagePackValue, rhs: MessagePackValue) -> Bool {
        switch (lhs, rhs) {
        case (.nil, .nil): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.uint(let a), .uint(let b)): return a == b
        case (.int(let a), .uint(let b)), (.uint(let b), .int(let a)): return a >= 0 && UInt64(a) == b
        case (.float(let a), .float(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)): return a == b
        case (.binary(let a), .binary(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.map(let a), .map(let b)): return a == b
        case (.ext(let t1, let d1), .ext(let t2, let d2)): return t1 == t2 && d1 == d2
        default: return false
        }
    }
}

extension MessagePackValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral
{
    public init(nilLiteral: ()) { self = .nil }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: MessagePackValue...) { self = .array(elements) }
}
