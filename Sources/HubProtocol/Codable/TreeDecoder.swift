/// A `Decoder` that reads a `Decodable` value from a ``JSONValue`` or ``MessagePackValue`` tree.
///
/// Numbers convert when the value is exact in the target type (`42.0` decodes as `Int`, `300` does not decode as
/// `UInt8`); `[UInt8]` reads a MessagePack `bin`, a JSON base64 string, or an array of small integers; a
/// ``JSONValue``/``MessagePackValue`` target receives the (converted) subtree as it is. Errors are the standard
/// `DecodingError`s with the coding path.
struct TreeDecoder<Value: TreeValue>: Decoder {
    let value: Value
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    static func decode<T: Decodable>(_ type: T.Type, from value: Value) throws -> T {
        try TreeDecoder(value: value, codingPath: []).decodeValue(type)
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == [UInt8].self {
            guard let bytes = value.bytesValue else { throw mismatch(type, "bytes") }
            // The cast cannot fail: T is [UInt8].
            if let result = bytes as? T { return result }
        }
        if T.self == JSONValue.self {
            var json = value as? JSONValue
            if json == nil, let messagePack = value as? MessagePackValue {
                json = try convert { () throws(HubProtocolError) in try JSONValue(messagePack) }
            }
            if let result = json as? T { return result }
        }
        if T.self == MessagePackValue.self {
            if let json = value as? JSONValue, let result = MessagePackValue(json) as? T { return result }
            if let result = value as? T { return result }
        }
        return try T(from: self)
    }

    private func convert(_ body: () throws(HubProtocolError) -> JSONValue) throws -> JSONValue {
        do {
            return try body()
        } catch {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: codingPath, debugDescription: "\(error)"))
        }
    }

    func mismatch(_ type: Any.Type, _ expected: String) -> DecodingError {
        DecodingError.typeMismatch(
            type,
            DecodingError.Context(
                codingPath: codingPath, debugDescription: "expected \(expected), found \(value.kindDescription)"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let members = value.objectValue, let keys = value.objectKeys else {
            throw mismatch([String: Any].self, "an object")
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(members: members, keys: keys, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard let elements = value.arrayValue else { throw mismatch([Any].self, "an array") }
        return UnkeyedContainer(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // Scalars, shared by the three containers through a decoder over one value.

    func decodeBool() throws -> Bool {
        guard let result = value.boolValue else { throw mismatch(Bool.self, "a boolean") }
        return result
    }

    func decodeString() throws -> String {
        guard let result = value.stringValue else { throw mismatch(String.self, "a string") }
        return result
    }

    func decodeDouble() throws -> Double {
        guard let result = value.doubleValue else { throw mismatch(Double.self, "a number") }
        return result
    }

    func decodeFloat() throws -> Float {
        guard let result = value.floatValue else { throw mismatch(Float.self, "a number") }
        return result
    }

    func decodeSigned<T: FixedWidthInteger & SignedInteger>(_ type: T.Type) throws -> T {
        guard let wide = value.int64Value else { throw mismatch(type, "an integer") }
        guard let result = T(exactly: wide) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: codingPath, debugDescription: "\(wide) does not fit \(type)"))
        }
        return result
    }

    func decodeUnsigned<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type) throws -> T {
        guard let wide = value.uint64Value else { throw mismatch(type, "a non-negative integer") }
        guard let result = T(exactly: wide) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: codingPath, debugDescription: "\(wide) does not fit \(type)"))
        }
        return result
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

    struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let members: [String: Value]
        let keys: [String]
        let codingPath: [any CodingKey]

        var allKeys: [Key] { keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

        private func decoder(_ key: Key) throws -> TreeDecoder {
            guard let member = members[key.stringValue] else {
                throw DecodingError.keyNotFound(
                    key,
                    DecodingError.Context(codingPath: codingPath, debugDescription: "no member '\(key.stringValue)'"))
            }
            return TreeDecoder(value: member, codingPath: codingPath + [key])
        }

        func decodeNil(forKey key: Key) throws -> Bool { try decoder(key).value.isNull }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder(key).decodeBool() }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder(key).decodeString() }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder(key).decodeDouble() }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder(key).decodeFloat() }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decoder(key).decodeSigned(type) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decoder(key).decodeSigned(type) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decoder(key).decodeSigned(type) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder(key).decodeSigned(type) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder(key).decodeSigned(type) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decoder(key).decodeUnsigned(type) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder(key).decodeUnsigned(type) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder(key).decodeUnsigned(type) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder(key).decodeUnsigned(type) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder(key).decodeUnsigned(type) }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder(key).decodeValue(type) }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            try decoder(key).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try decoder(key).unkeyedContainer()
        }

        func superDecoder() throws -> any Decoder {
            TreeDecoder(value: members["super"] ?? Value.null, codingPath: codingPath)
        }

        func superDecoder(forKey key: Key) throws -> any Decoder {
            TreeDecoder(value: members[key.stringValue] ?? Value.null, codingPath: codingPath + [key])
        }
    }

    struct UnkeyedContainer: UnkeyedDecodingContainer {
        let elements: [Value]
        let codingPath: [any CodingKey]
        private(set) var currentIndex = 0

        init(elements: [Value], codingPath: [any CodingKey]) {
            self.elements = elements
            self.codingPath = codingPath
        }

        var count: Int? { elements.count }
        var isAtEnd: Bool { currentIndex >= elements.count }

        private mutating func next(_ type: Any.Type) throws -> TreeDecoder {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(
                    type,
                    DecodingError.Context(
                        codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "the array has ended"))
            }
            defer { currentIndex += 1 }
            return TreeDecoder(value: elements[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, elements[currentIndex].isNull else { return false }
            currentIndex += 1
            return true
        }
        mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type).decodeBool() }
        mutating func decode(_ type: String.Type) throws -> String { try next(type).decodeString() }
        mutating func decode(_ type: Double.Type) throws -> Double { try next(type).decodeDouble() }
        mutating func decode(_ type: Float.Type) throws -> Float { try next(type).decodeFloat() }
        mutating func decode(_ type: Int.Type) throws -> Int { try next(type).decodeSigned(type) }
        mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type).decodeSigned(type) }
        mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type).decodeSigned(type) }
        mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type).decodeSigned(type) }
        mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type).decodeSigned(type) }
        mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type).decodeUnsigned(type) }
        mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type).decodeUnsigned(type) }
        mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type).decodeUnsigned(type) }
        mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type).decodeUnsigned(type) }
        mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type).decodeUnsigned(type) }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(type).decodeValue(type) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey>
        {
            try next([String: Any].self).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            try next([Any].self).unkeyedContainer()
        }

        mutating func superDecoder() throws -> any Decoder { try next(Any.self) }
    }
}

extension TreeDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try decodeBool() }
    func decode(_ type: String.Type) throws -> String { try decodeString() }
    func decode(_ type: Double.Type) throws -> Double { try decodeDouble() }
    func decode(_ type: Float.Type) throws -> Float { try decodeFloat() }
    func decode(_ type: Int.Type) throws -> Int { try decodeSigned(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decodeSigned(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decodeSigned(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decodeSigned(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decodeSigned(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decodeUnsigned(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeUnsigned(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeUnsigned(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeUnsigned(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeUnsigned(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type) }
}

extension JSONValue {
    /// Decodes a `Decodable` from this value (exact numbers; `[UInt8]` from base64 or an array of bytes).
    /// - Throws: `DecodingError` (type mismatch, missing key, number out of range) with the coding path.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try TreeDecoder<JSONValue>.decode(type, from: self)
    }
}

extension MessagePackValue {
    /// Decodes a `Decodable` from this value (exact numbers; `[UInt8]` from `bin` or an array of bytes).
    /// - Throws: `DecodingError` (type mismatch, missing key, number out of range) with the coding path.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try TreeDecoder<MessagePackValue>.decode(type, from: self)
    }
}
