/// A JSON value (RFC 8259), as the hub protocol's JSON encoding carries arguments, items and results.
///
/// Integers are kept exact: a number written without fraction or exponent is ``int(_:)`` when it fits `Int64`,
/// ``uint(_:)`` when it only fits `UInt64`; every other number is ``double(_:)``. Objects keep their members in
/// insertion order (``JSONObject``). Equality compares numbers by value across the three cases
/// (`.int(1) == .uint(1)`, `.int(1) == .double(1.0)`).
public enum JSONValue: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The compact JSON text of the value (non-finite doubles are written as `null` here; the encoders throw).
    public var description: String {
        var bytes: [UInt8] = []
        JSONWriter.write(self, into: &bytes, nonFinite: .null)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The member `key` of an object; nil for other values or absent keys.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// Parses one JSON value from `bytes` (UTF-8), which must hold nothing else but whitespace.
    /// - Throws: ``HubProtocolError`` with ``HubProtocolError/Code/malformedJSON``, `.invalidUTF8`,
    ///   `.numberOutOfRange`, `.duplicateKey`, `.depthLimitExceeded`, `.collectionTooLarge` or `.messageTooLarge`
    ///   (input longer than `limits.maximumMessageSize`).
    public init(parsing bytes: some Collection<UInt8>, limits: HubProtocolLimits = .default) throws(HubProtocolError) {
        guard bytes.count <= limits.maximumMessageSize else {
            throw HubProtocolError(
                .messageTooLarge, "\(bytes.count) bytes, limit \(limits.maximumMessageSize)")
        }
        let result: Result<JSONValue, HubProtocolError> =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(HubProtocolError) in try JSONParser.parse(buffer, limits: limits) }
            }
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(HubProtocolError) in try JSONParser.parse(buffer, limits: limits) }
            }
        self = try result.get()
    }

    /// Appends the compact JSON text of the value to `buffer`.
    /// - Throws: ``HubProtocolError/Code/unrepresentableValue`` for a NaN or infinite double.
    public func write(into buffer: inout [UInt8]) throws(HubProtocolError) {
        try JSONWriter.write(self, into: &buffer)
    }

    /// The compact JSON text of the value as bytes.
    /// - Throws: ``HubProtocolError/Code/unrepresentableValue`` for a NaN or infinite double.
    public func serialized() throws(HubProtocolError) -> [UInt8] {
        var bytes: [UInt8] = []
        try JSONWriter.write(self, into: &bytes)
        return bytes
    }
}

extension JSONValue: Equatable {
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        case (.int, _), (.uint, _), (.double, _):
            return NumberEquality.equal(lhs.numeric, rhs.numeric)
        default: return false
        }
    }

    var numeric: NumberEquality.Number? {
        switch self {
        case .int(let value): return .int(value)
        case .uint(let value): return .uint(value)
        case .double(let value): return .double(value)
        default: return nil
        }
    }
}

/// Numeric comparison across integer and floating-point representations.
enum NumberEquality {
    enum Number {
        case int(Int64)
        case uint(UInt64)
        case double(Double)
    }

    static func equal(_ lhs: Number?, _ rhs: Number?) -> Bool {
        guard let lhs, let rhs else { return false }
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return a == b
        case (.uint(let a), .uint(let b)): return a == b
        case (.int(let a), .uint(let b)), (.uint(let b), .int(let a)): return a >= 0 && UInt64(a) == b
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.double(let d), .int(let i)), (.int(let i), .double(let d)):
            return Int64(exactly: d) == i
        case (.double(let d), .uint(let u)), (.uint(let u), .double(let d)):
            return UInt64(exactly: d) == u
        }
    }
}

/// The members of a JSON object in insertion order, with keyed lookup. Keys are unique: setting an existing key
/// replaces its value in place.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    /// The keys in insertion order.
    public private(set) var keys: [String] = []
    private var values: [String: JSONValue] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    /// Members in order; a later duplicate key replaces the earlier value.
    public init(_ members: some Sequence<(String, JSONValue)>) {
        for (key, value) in members { self[key] = value }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// The value of `key`; setting nil removes the member, setting a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Inserts a member; returns false (and changes nothing) if the key exists.
    @discardableResult
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard values[key] == nil else { return false }
        values[key] = value
        keys.append(key)
        return true
    }

    /// The members in insertion order.
    public func makeIterator() -> some IteratorProtocol<(key: String, value: JSONValue)> {
        var index = 0
        let keys = self.keys
        let values = self.values
        return AnyIterator {
            guard index < keys.count else { return nil }
            defer { index += 1 }
            let key = keys[index]
            return (key, values[key] ?? .null)
        }
    }

    /// Equal members in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.keys == rhs.keys && lhs.values == rhs.values
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}
