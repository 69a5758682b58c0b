/// What the `Codable` bridge needs from a value tree; ``JSONValue`` and ``MessagePackValue`` conform. The
/// encoder builds values with the constructors, the decoder reads them with the accessors.
protocol TreeValue: Sendable {
    static var null: Self { get }
    static func bool(_ value: Bool) -> Self
    static func signed(_ value: Int64) -> Self
    static func unsigned(_ value: UInt64) -> Self
    static func float(_ value: Float) -> Self
    static func double(_ value: Double) -> Self
    static func string(_ value: String) -> Self
    static func bytes(_ value: [UInt8]) -> Self
    static func array(_ elements: [Self]) -> Self
    static func object(_ members: [(String, Self)]) -> Self
    static func converting(_ json: JSONValue) throws(HubProtocolError) -> Self
    static func converting(_ messagePack: MessagePackValue) throws(HubProtocolError) -> Self

    var isNull: Bool { get }
    var boolValue: Bool? { get }
    var int64Value: Int64? { get }
    var uint64Value: UInt64? { get }
    var doubleValue: Double? { get }
    var floatValue: Float? { get }
    var stringValue: String? { get }
    var bytesValue: [UInt8]? { get }
    var arrayValue: [Self]? { get }
    /// The members of an object/map with string keys, for keyed decoding.
    var objectValue: [String: Self]? { get }
    /// The keys in order (for `allKeys`).
    var objectKeys: [String]? { get }
    static var kindName: String { get }
    var kindDescription: String { get }
}

extension JSONValue: TreeValue {
    static func signed(_ value: Int64) -> JSONValue { .int(value) }
    static func unsigned(_ value: UInt64) -> JSONValue {
        value <= UInt64(Int64.max) ? .int(Int64(value)) : .uint(value)
    }
    /// A Float is written with its own shortest digits (0.1, not 0.10000000149011612).
    static func float(_ value: Float) -> JSONValue {
        guard value.isFinite, let double = Double(value.description) else { return .double(Double(value)) }
        return .double(double)
    }
    /// Bytes are a base64 string, the hub protocol's JSON mapping of `byte[]` (HubProtocol.md, "Type Mappings").
    static func bytes(_ value: [UInt8]) -> JSONValue { .string(Base64.encode(value)) }
    static func object(_ members: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(members)) }
    static func converting(_ json: JSONValue) -> JSONValue { json }
    static func converting(_ messagePack: MessagePackValue) throws(HubProtocolError) -> JSONValue {
        try JSONValue(messagePack)
    }

    var isNull: Bool { if case .null = self { true } else { false } }
    var boolValue: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int64Value: Int64? {
        switch self {
        case .int(let value): value
        case .uint(let value): Int64(exactly: value)
        case .double(let value): Int64(exactly: value)
        default: nil
        }
    }
    var uint64Value: UInt64? {
        switch self {
        case .int(let value): UInt64(exactly: value)
        case .uint(let value): value
        case .double(let value): UInt64(exactly: value)
        default: nil
        }
    }
    var doubleValue: Double? {
        switch self {
        case .int(let value): Double(value)
        case .uint(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }
    var floatValue: Float? { doubleValue.map { Float($0) } }
    var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    var bytesValue: [UInt8]? {
        switch self {
        case .string(let text): Base64.decode(text)
        case .array(let elements):
            elements.allSatisfy({ $0.uint64Value.map { $0 <= 0xFF } ?? false })
                ? elements.compactMap { $0.uint64Value.map { UInt8($0) } } : nil
        default: nil
        }
    }
    var arrayValue: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    var objectValue: [String: JSONValue]? {
        guard case .object(let object) = self else { return nil }
        var members: [String: JSONValue] = [:]
        for (key, value) in object { members[key] = value }
        return members
    }
    var objectKeys: [String]? { if case .object(let object) = self { object.keys } else { nil } }
    static var kindName: String { "JSON" }
    var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .uint, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension MessagePackValue: TreeValue {
    static var null: MessagePackValue { .nil }
    static func signed(_ value: Int64) -> MessagePackValue { .int(value) }
    static func unsigned(_ value: UInt64) -> MessagePackValue {
        value <= UInt64(Int64.max) ? .int(Int64(value)) : .uint(value)
    }
    static func bytes(_ value: [UInt8]) -> MessagePackValue { .binary(value) }
    static func object(_ members: [(String, MessagePackValue)]) -> MessagePackValue {
        .map(members.map { Pair(.string($0.0), $0.1) })
    }
    static func converting(_ json: JSONValue) -> MessagePackValue { MessagePackValue(json) }
    static func converting(_ messagePack: MessagePackValue) -> MessagePackValue { messagePack }

    var isNull: Bool { if case .nil = self { true } else { false } }
    var boolValue: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int64Value: Int64? {
        switch self {
        case .int(let value): value
        case .uint(let value): Int64(exactly: value)
        case .float(let value): Int64(exactly: value)
        case .double(let value): Int64(exactly: value)
        default: nil
        }
    }
    var uint64Value: UInt64? {
        switch self {
        case .int(let value): UInt64(exactly: value)
        case .uint(let value): value
        case .float(let value): UInt64(exactly: value)
        case .double(let value): UInt64(exactly: value)
        default: nil
        }
    }
    var doubleValue: Double? {
        switch self {
        case .int(let value): Double(value)
        case .uint(let value): Double(value)
        case .float(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }
    var floatValue: Float? {
        if case .float(let value) = self { return value }
        return doubleValue.map { Float($0) }
    }
    var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    var bytesValue: [UInt8]? {
        switch self {
        case .binary(let value): value
        case .array(let elements):
            elements.allSatisfy({ $0.uint64Value.map { $0 <= 0xFF } ?? false })
                ? elements.compactMap { $0.uint64Value.map { UInt8($0) } } : nil
        default: nil
        }
    }
    var arrayValue: [MessagePackValue]? { if case .array(let value) = self { value } else { nil } }
    var objectValue: [String: MessagePackValue]? {
        guard case .map(let pairs) = self else { return nil }
        var members: [String: MessagePackValue] = [:]
        for pair in pairs {
            guard case .string(let key) = pair.key else { return nil }
            members[key] = pair.value
        }
        return members
    }
    var objectKeys: [String]? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.compactMap { if case .string(let key) = $0.key { key } else { nil } }
    }
    static var kindName: String { "MessagePack" }
    var kindDescription: String {
        switch self {
        case .nil: "nil"
        case .bool: "a boolean"
        case .int, .uint, .float, .double: "a number"
        case .string: "a string"
        case .binary: "a binary"
        case .array: "an array"
        case .map: "a map"
        case .ext: "an extension"
        }
    }
}

extension MessagePackValue {
    /// The MessagePack form of a JSON value: objects become maps with string keys (in order), numbers keep their
    /// integer or double representation. Never fails.
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .nil
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .int(value)
        case .uint(let value): self = .uint(value)
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let elements): self = .array(elements.map(MessagePackValue.init))
        case .object(let object): self = .map(object.map { Pair(.string($0.key), MessagePackValue($0.value)) })
        }
    }
}

extension JSONValue {
    /// The JSON form of a MessagePack value: binaries become base64 strings (HubProtocol.md, "Type Mappings"),
    /// float 32 becomes a double with the same shortest digits, maps become objects.
    /// - Throws: ``HubProtocolError/Code/unrepresentableValue`` for an extension value, a map key that is not a
    ///   string, or a non-finite float; ``HubProtocolError/Code/duplicateKey`` for a map that repeats a key.
    public init(_ messagePack: MessagePackValue) throws(HubProtocolError) {
        switch messagePack {
        case .nil: self = .null
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .int(value)
        case .uint(let value): self = .uint(value)
        case .float(let value):
            guard value.isFinite else { throw HubProtocolError(.unrepresentableValue, "JSON has no NaN or infinity") }
            self = JSONValue.float(value)
        case .double(let value):
            guard value.isFinite else { throw HubProtocolError(.unrepresentableValue, "JSON has no NaN or infinity") }
            self = .double(value)
        case .string(let value): self = .string(value)
        case .binary(let value): self = .string(Base64.encode(value))
        case .array(let elements):
            var converted: [JSONValue] = []
            converted.reserveCapacity(elements.count)
            for element in elements { converted.append(try JSONValue(element)) }
            self = .array(converted)
        case .map(let pairs):
            var object = JSONObject()
            for pair in pairs {
                guard case .string(let key) = pair.key else {
                    throw HubProtocolError(.unrepresentableValue, "JSON object keys must be strings")
                }
                guard object.insertNew(key, try JSONValue(pair.value)) else {
                    throw HubProtocolError(.duplicateKey, field: key, "map key '\(key)' appears twice")
                }
            }
            self = .object(object)
        case .ext:
            throw HubProtocolError(.unrepresentableValue, "JSON has no MessagePack extension types")
        }
    }
}
