/// An `Encoder` that builds a ``JSONValue`` or ``MessagePackValue`` tree from an `Encodable` value.
///
/// Mapping: integers stay exact, `Float` stays float 32 in MessagePack, `[UInt8]` is a MessagePack `bin` and a
/// JSON base64 string (HubProtocol.md, "Type Mappings"), a ``JSONValue`` or ``MessagePackValue`` inside the
/// value is embedded as it is (converted to the other encoding when needed), keyed containers become objects/maps
/// with string keys in encoding order, `nil` is null/nil.
final class TreeEncoder<Value: TreeValue>: Encoder {
    /// A container slot: a finished value, or a node that an `encode(to:)` writes into.
    enum Slot {
        case value(Value)
        case node(Node)

        func resolve() -> Value {
            switch self {
            case .value(let value): return value
            case .node(let node): return node.resolve()
            }
        }
    }

    /// A node under construction: a finished value, or a container that children write into.
    final class Node {
        enum State {
            case empty
            case value(Value)
            case array([Slot])
            case object(keys: [String], members: [String: Slot])
        }
        var state: State = .empty

        func resolve() -> Value {
            switch state {
            case .empty: return Value.object([])
            case .value(let value): return value
            case .array(let slots): return Value.array(slots.map { $0.resolve() })
            case .object(let keys, let members):
                return Value.object(keys.map { ($0, members[$0]?.resolve() ?? Value.null) })
            }
        }

        func makeObject() {
            if case .object = state { return }
            state = .object(keys: [], members: [:])
        }

        func makeArray() {
            if case .array = state { return }
            state = .array([])
        }

        func setMember(_ key: String, _ slot: Slot) {
            guard case .object(var keys, var members) = state else { return }
            state = .empty  // keeps the storage uniquely referenced while it changes
            if members.updateValue(slot, forKey: key) == nil { keys.append(key) }
            state = .object(keys: keys, members: members)
        }

        func append(_ slot: Slot) {
            guard case .array(var slots) = state else { return }
            state = .empty
            slots.append(slot)
            state = .array(slots)
        }

        func child(forKey key: String) -> Node {
            let node = Node()
            setMember(key, .node(node))
            return node
        }

        func appendChild() -> Node {
            let node = Node()
            append(.node(node))
            return node
        }

        var arrayCount: Int { if case .array(let slots) = state { slots.count } else { 0 } }
    }

    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: Node = Node(), codingPath: [any CodingKey] = []) {
        self.node = node
        self.codingPath = codingPath
    }

    static func encode(_ value: some Encodable) throws -> Value {
        let encoder = TreeEncoder()
        try encoder.encodeValue(value, into: encoder.node)
        return encoder.node.resolve()
    }

    /// The slot for `value`: scalars and the special cases of the mapping above become values directly (no node,
    /// no coding path); anything else gets a node that its `encode(to:)` fills.
    func slot<T: Encodable>(for value: T, path: @autoclosure () -> [any CodingKey]) throws -> Slot {
        if let scalar = Self.scalar(value) { return .value(scalar) }
        if let special = try Self.special(value, path) { return .value(special) }
        let node = Node()
        try value.encode(to: TreeEncoder(node: node, codingPath: path()))
        return .node(node)
    }

    /// Encodes `value` into `node`.
    func encodeValue<T: Encodable>(_ value: T, into node: Node, path: [any CodingKey]? = nil) throws {
        let path = path ?? codingPath
        if let scalar = Self.scalar(value) {
            node.state = .value(scalar)
        } else if let special = try Self.special(value, { path }) {
            node.state = .value(special)
        } else {
            try value.encode(to: TreeEncoder(node: node, codingPath: path))
        }
    }

    /// The common scalar types, recognized by their static type (cheap) so they skip `encode(to:)`.
    private static func scalar<T>(_ value: T) -> Value? {
        if T.self == String.self, let string = value as? String { return Value.string(string) }
        if T.self == Int.self, let number = value as? Int { return Value.signed(Int64(number)) }
        if T.self == Int64.self, let number = value as? Int64 { return Value.signed(number) }
        if T.self == Double.self, let number = value as? Double { return Value.double(number) }
        if T.self == Bool.self, let flag = value as? Bool { return Value.bool(flag) }
        if T.self == Int32.self, let number = value as? Int32 { return Value.signed(Int64(number)) }
        if T.self == UInt64.self, let number = value as? UInt64 { return Value.unsigned(number) }
        if T.self == UInt.self, let number = value as? UInt { return Value.unsigned(UInt64(number)) }
        if T.self == Float.self, let number = value as? Float { return Value.float(number) }
        return nil
    }

    /// `[UInt8]` and the two value trees. Static type checks: a dynamic `as? [UInt8]` also succeeds for an empty
    /// array of any element type.
    private static func special<T>(_ value: T, _ path: () -> [any CodingKey]) throws -> Value? {
        if T.self == [UInt8].self, let bytes = value as? [UInt8] { return Value.bytes(bytes) }
        if T.self == JSONValue.self, let json = value as? JSONValue {
            return try convert(path()) { () throws(HubProtocolError) in try Value.converting(json) }
        }
        if T.self == MessagePackValue.self, let messagePack = value as? MessagePackValue {
            return try convert(path()) { () throws(HubProtocolError) in try Value.converting(messagePack) }
        }
        return nil
    }

    private static func convert(_ path: [any CodingKey], _ body: () throws(HubProtocolError) -> Value) throws -> Value {
        do {
            return try body()
        } catch {
            throw EncodingError.invalidValue(
                error, EncodingError.Context(codingPath: path, debugDescription: error.description))
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(KeyedContainer<Key>(encoder: self, node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.makeArray()
        return UnkeyedContainer(encoder: self, node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self, node: node, codingPath: codingPath)
    }

    struct IndexKey: CodingKey {
        let intValue: Int?
        let stringValue: String
        init(_ index: Int) {
            intValue = index
            stringValue = "Index \(index)"
        }
        init?(intValue: Int) { self.init(intValue) }
        init?(stringValue: String) { nil }
    }

    struct SuperKey: CodingKey {
        let stringValue = "super"
        var intValue: Int? { nil }
        init() {}
        init?(intValue: Int) { nil }
        init?(stringValue: String) { nil }
    }

    struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: TreeEncoder
        let node: Node
        let codingPath: [any CodingKey]

        private func set(_ value: Value, _ key: Key) { node.setMember(key.stringValue, .value(value)) }

        mutating func encodeNil(forKey key: Key) throws { set(Value.null, key) }
        mutating func encode(_ value: Bool, forKey key: Key) throws { set(Value.bool(value), key) }
        mutating func encode(_ value: String, forKey key: Key) throws { set(Value.string(value), key) }
        mutating func encode(_ value: Double, forKey key: Key) throws { set(Value.double(value), key) }
        mutating func encode(_ value: Float, forKey key: Key) throws { set(Value.float(value), key) }
        mutating func encode(_ value: Int, forKey key: Key) throws { set(Value.signed(Int64(value)), key) }
        mutating func encode(_ value: Int8, forKey key: Key) throws { set(Value.signed(Int64(value)), key) }
        mutating func encode(_ value: Int16, forKey key: Key) throws { set(Value.signed(Int64(value)), key) }
        mutating func encode(_ value: Int32, forKey key: Key) throws { set(Value.signed(Int64(value)), key) }
        mutating func encode(_ value: Int64, forKey key: Key) throws { set(Value.signed(value), key) }
        mutating func encode(_ value: UInt, forKey key: Key) throws { set(Value.unsigned(UInt64(value)), key) }
        mutating func encode(_ value: UInt8, forKey key: Key) throws { set(Value.unsigned(UInt64(value)), key) }
        mutating func encode(_ value: UInt16, forKey key: Key) throws { set(Value.unsigned(UInt64(value)), key) }
        mutating func encode(_ value: UInt32, forKey key: Key) throws { set(Value.unsigned(UInt64(value)), key) }
        mutating func encode(_ value: UInt64, forKey key: Key) throws { set(Value.unsigned(value), key) }
        mutating func encode(_ value: some Encodable, forKey key: Key) throws {
            node.setMember(key.stringValue, try encoder.slot(for: value, path: codingPath + [key]))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            let child = node.child(forKey: key.stringValue)
            child.makeObject()
            return KeyedEncodingContainer(
                KeyedContainer<NestedKey>(encoder: encoder, node: child, codingPath: codingPath + [key]))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let child = node.child(forKey: key.stringValue)
            child.makeArray()
            return UnkeyedContainer(encoder: encoder, node: child, codingPath: codingPath + [key])
        }

        mutating func superEncoder() -> any Encoder {
            TreeEncoder(node: node.child(forKey: "super"), codingPath: codingPath + [SuperKey()])
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder {
            TreeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
        }
    }

    struct UnkeyedContainer: UnkeyedEncodingContainer {
        let encoder: TreeEncoder
        let node: Node
        let codingPath: [any CodingKey]
        var count: Int { node.arrayCount }

        private func append(_ value: Value) { node.append(.value(value)) }

        mutating func encodeNil() throws { append(Value.null) }
        mutating func encode(_ value: Bool) throws { append(Value.bool(value)) }
        mutating func encode(_ value: String) throws { append(Value.string(value)) }
        mutating func encode(_ value: Double) throws { append(Value.double(value)) }
        mutating func encode(_ value: Float) throws { append(Value.float(value)) }
        mutating func encode(_ value: Int) throws { append(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int8) throws { append(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int16) throws { append(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int32) throws { append(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int64) throws { append(Value.signed(value)) }
        mutating func encode(_ value: UInt) throws { append(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt8) throws { append(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt16) throws { append(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt32) throws { append(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt64) throws { append(Value.unsigned(value)) }
        mutating func encode(_ value: some Encodable) throws {
            node.append(try encoder.slot(for: value, path: codingPath + [IndexKey(count)]))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            let path = codingPath + [IndexKey(count)]
            let child = node.appendChild()
            child.makeObject()
            return KeyedEncodingContainer(KeyedContainer<NestedKey>(encoder: encoder, node: child, codingPath: path))
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let path = codingPath + [IndexKey(count)]
            let child = node.appendChild()
            child.makeArray()
            return UnkeyedContainer(encoder: encoder, node: child, codingPath: path)
        }

        mutating func superEncoder() -> any Encoder {
            let path = codingPath + [IndexKey(count)]
            return TreeEncoder(node: node.appendChild(), codingPath: path)
        }
    }

    struct SingleContainer: SingleValueEncodingContainer {
        let encoder: TreeEncoder
        let node: Node
        let codingPath: [any CodingKey]

        private func set(_ value: Value) { node.state = .value(value) }

        mutating func encodeNil() throws { set(Value.null) }
        mutating func encode(_ value: Bool) throws { set(Value.bool(value)) }
        mutating func encode(_ value: String) throws { set(Value.string(value)) }
        mutating func encode(_ value: Double) throws { set(Value.double(value)) }
        mutating func encode(_ value: Float) throws { set(Value.float(value)) }
        mutating func encode(_ value: Int) throws { set(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int8) throws { set(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int16) throws { set(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int32) throws { set(Value.signed(Int64(value))) }
        mutating func encode(_ value: Int64) throws { set(Value.signed(value)) }
        mutating func encode(_ value: UInt) throws { set(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt8) throws { set(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt16) throws { set(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt32) throws { set(Value.unsigned(UInt64(value))) }
        mutating func encode(_ value: UInt64) throws { set(Value.unsigned(value)) }
        mutating func encode(_ value: some Encodable) throws {
            try encoder.encodeValue(value, into: node, path: codingPath)
        }
    }
}

extension JSONValue {
    /// The JSON value of an `Encodable` (see the mapping in this module's overview: exact integers, `[UInt8]` as
    /// base64, objects in encoding order).
    /// - Throws: `EncodingError` from the value's `encode(to:)`, or `.invalidValue` wrapping a
    ///   ``HubProtocolError`` when an embedded ``MessagePackValue`` has no JSON form.
    public init(encoding value: some Encodable) throws {
        self = try TreeEncoder<JSONValue>.encode(value)
    }
}

extension MessagePackValue {
    /// The MessagePack value of an `Encodable` (exact integers, `Float` as float 32, `[UInt8]` as `bin`, objects
    /// as maps with string keys in encoding order).
    /// - Throws: `EncodingError` from the value's `encode(to:)`.
    public init(encoding value: some Encodable) throws {
        self = try TreeEncoder<MessagePackValue>.encode(value)
    }
}
