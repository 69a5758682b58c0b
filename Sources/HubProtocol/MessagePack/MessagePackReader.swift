/// Reads MessagePack values from a contiguous buffer, strictly and within limits. Element counts are checked
/// against the bytes left (every element takes at least one byte) and against `maximumCollectionCount` before
/// any storage is reserved, so a header claiming 2^32 elements costs nothing.
struct MessagePackReader {
    let bytes: UnsafeBufferPointer<UInt8>
    let limits: HubProtocolLimits
    private(set) var position = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>, limits: HubProtocolLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    static func decodeOne(_ bytes: UnsafeBufferPointer<UInt8>, limits: HubProtocolLimits) throws(HubProtocolError)
        -> MessagePackValue
    {
        var reader = MessagePackReader(bytes, limits: limits)
        let value = try reader.readValue(depth: 1)
        guard reader.isAtEnd else {
            throw HubProtocolError(.trailingBytes, "bytes after the MessagePack value", offset: reader.position)
        }
        return value
    }

    var isAtEnd: Bool { position >= bytes.count }
    var remaining: Int { bytes.count - position }

    private func truncated() -> HubProtocolError {
        HubProtocolError(.truncated, "the input ends inside a MessagePack value", offset: position)
    }

    mutating func readByte() throws(HubProtocolError) -> UInt8 {
        guard position < bytes.count else { throw truncated() }
        defer { position += 1 }
        return bytes[position]
    }

    /// The next format byte without consuming it.
    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func readBigEndian<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(HubProtocolError)
        -> T
    {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw truncated() }
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(bytes[position + index]) }
        position += size
        return value
    }

    private mutating func readBytes(_ count: Int) throws(HubProtocolError) -> UnsafeBufferPointer<UInt8> {
        guard count <= remaining else { throw truncated() }
        defer { position += count }
        return UnsafeBufferPointer(rebasing: bytes[position..<position + count])
    }

    private mutating func readString(length: Int) throws(HubProtocolError) -> String {
        let start = position
        let raw = try readBytes(length)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw HubProtocolError(.invalidUTF8, "str is not valid UTF-8", offset: start)
        }
        return string
    }

    /// Validates an element count: within the limit, and no more than the bytes left (each element takes at
    /// least `bytesPerElement` bytes), so a lying header cannot make us reserve memory.
    private func checkCount(_ count: Int, bytesPerElement: Int) throws(HubProtocolError) {
        guard count <= limits.maximumCollectionCount else {
            throw HubProtocolError(
                .collectionTooLarge, "\(count) elements, limit \(limits.maximumCollectionCount)", offset: position)
        }
        guard count <= remaining / bytesPerElement else { throw truncated() }
    }

    /// Reads an array header; returns the element count (checked, see ``checkCount``).
    mutating func readArrayHeader() throws(HubProtocolError) -> Int? {
        guard let byte = peek() else { throw truncated() }
        let count: Int
        switch byte {
        case 0x90...0x9F:
            position += 1
            count = Int(byte & 0x0F)
        case 0xDC:
            position += 1
            count = Int(try readBigEndian(UInt16.self))
        case 0xDD:
            position += 1
            count = Int(try readBigEndian(UInt32.self))
        default: return nil
        }
        try checkCount(count, bytesPerElement: 1)
        return count
    }

    /// Reads a map header; returns the pair count (checked).
    mutating func readMapHeader() throws(HubProtocolError) -> Int? {
        guard let byte = peek() else { throw truncated() }
        let count: Int
        switch byte {
        case 0x80...0x8F:
            position += 1
            count = Int(byte & 0x0F)
        case 0xDE:
            position += 1
            count = Int(try readBigEndian(UInt16.self))
        case 0xDF:
            position += 1
            count = Int(try readBigEndian(UInt32.self))
        default: return nil
        }
        try checkCount(count, bytesPerElement: 2)
        return count
    }

    mutating func readValue(depth: Int) throws(HubProtocolError) -> MessagePackValue {
        let start = position
        let byte = try readByte()
        switch byte {
        case 0x00...0x7F: return .int(Int64(byte))
        case 0xE0...0xFF: return .int(Int64(Int8(bitPattern: byte)))
        case 0xA0...0xBF: return .string(try readString(length: Int(byte & 0x1F)))
        case 0x80...0x8F, 0xDE, 0xDF:
            position = start
            return try readMap(depth: depth)
        case 0x90...0x9F, 0xDC, 0xDD:
            position = start
            return try readArray(depth: depth)
        case 0xC0: return .nil
        case 0xC2: return .bool(false)
        case 0xC3: return .bool(true)
        case 0xC4: return .binary(Array(try readBytes(Int(try readBigEndian(UInt8.self)))))
        case 0xC5: return .binary(Array(try readBytes(Int(try readBigEndian(UInt16.self)))))
        case 0xC6: return .binary(Array(try readBytes(Int(try readBigEndian(UInt32.self)))))
        case 0xC7: return try readExt(length: Int(try readBigEndian(UInt8.self)))
        case 0xC8: return try readExt(length: Int(try readBigEndian(UInt16.self)))
        case 0xC9: return try readExt(length: Int(try readBigEndian(UInt32.self)))
        case 0xCA: return .float(Float(bitPattern: try readBigEndian(UInt32.self)))
        case 0xCB: return .double(Double(bitPattern: try readBigEndian(UInt64.self)))
        case 0xCC: return .int(Int64(try readBigEndian(UInt8.self)))
        case 0xCD: return .int(Int64(try readBigEndian(UInt16.self)))
        case 0xCE: return .int(Int64(try readBigEndian(UInt32.self)))
        case 0xCF:
            let value = try readBigEndian(UInt64.self)
            return value <= UInt64(Int64.max) ? .int(Int64(value)) : .uint(value)
        case 0xD0: return .int(Int64(Int8(bitPattern: try readBigEndian(UInt8.self))))
        case 0xD1: return .int(Int64(Int16(bitPattern: try readBigEndian(UInt16.self))))
        case 0xD2: return .int(Int64(Int32(bitPattern: try readBigEndian(UInt32.self))))
        case 0xD3: return .int(Int64(bitPattern: try readBigEndian(UInt64.self)))
        case 0xD4: return try readExt(length: 1)
        case 0xD5: return try readExt(length: 2)
        case 0xD6: return try readExt(length: 4)
        case 0xD7: return try readExt(length: 8)
        case 0xD8: return try readExt(length: 16)
        case 0xD9: return .string(try readString(length: Int(try readBigEndian(UInt8.self))))
        case 0xDA: return .string(try readString(length: Int(try readBigEndian(UInt16.self))))
        case 0xDB: return .string(try readString(length: Int(try readBigEndian(UInt32.self))))
        default:  // 0xC1, never used
            throw HubProtocolError(.malformedMessagePack, "reserved format byte 0xc1", offset: start)
        }
    }

    private mutating func readExt(length: Int) throws(HubProtocolError) -> MessagePackValue {
        let type = Int8(bitPattern: try readByte())
        return .ext(type: type, data: Array(try readBytes(length)))
    }

    private func checkDepth(_ depth: Int) throws(HubProtocolError) {
        guard depth <= limits.maximumDepth else {
            throw HubProtocolError(.depthLimitExceeded, "nesting deeper than \(limits.maximumDepth)", offset: position)
        }
    }

    private mutating func readArray(depth: Int) throws(HubProtocolError) -> MessagePackValue {
        try checkDepth(depth)
        guard let count = try readArrayHeader() else { throw truncated() }
        var elements: [MessagePackValue] = []
        elements.reserveCapacity(count)
        for _ in 0..<count { elements.append(try readValue(depth: depth + 1)) }
        return .array(elements)
    }

    private mutating func readMap(depth: Int) throws(HubProtocolError) -> MessagePackValue {
        try checkDepth(depth)
        guard let count = try readMapHeader() else { throw truncated() }
        var pairs: [MessagePackValue.Pair] = []
        pairs.reserveCapacity(count)
        var stringKeys = Set<String>()
        for _ in 0..<count {
            let keyStart = position
            let key = try readValue(depth: depth + 1)
            // Duplicate string keys (the only kind hub messages and Codable objects use) are refused; maps with
            // other key kinds are kept as they came.
            if case .string(let name) = key, !stringKeys.insert(name).inserted {
                throw HubProtocolError(.duplicateKey, field: name, "map key '\(name)' appears twice", offset: keyStart)
            }
            let value = try readValue(depth: depth + 1)
            pairs.append(MessagePackValue.Pair(key, value))
        }
        return .map(pairs)
    }
}
