extension RESPValue {
    /// Appends the RESP3 wire form of this value to `buffer` (RESP2 nulls keep their RESP2 form: `$-1`,
    /// `*-1`). What a server sends; used by tests, fake servers and the fuzzer. Doubles are written with
    /// Swift's shortest round-tripping form (`1.5`, `1e+20`, `inf`, `-inf`, `nan`). A simple string or error
    /// holding CR or LF would not parse back.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .simpleString(let text): Self.appendLine(UInt8(ascii: "+"), Array(text.utf8), to: &buffer)
        case .simpleError(let text): Self.appendLine(UInt8(ascii: "-"), Array(text.utf8), to: &buffer)
        case .integer(let value): Self.appendLine(UInt8(ascii: ":"), Array(String(value).utf8), to: &buffer)
        case .bulkString(nil): buffer.append(contentsOf: Array("$-1\r\n".utf8))
        case .bulkString(let bytes?): Self.appendBulk(UInt8(ascii: "$"), bytes, to: &buffer)
        case .array(nil): buffer.append(contentsOf: Array("*-1\r\n".utf8))
        case .array(let elements?): Self.appendAggregate(UInt8(ascii: "*"), elements, to: &buffer)
        case .null: buffer.append(contentsOf: Array("_\r\n".utf8))
        case .boolean(let value): buffer.append(contentsOf: Array((value ? "#t\r\n" : "#f\r\n").utf8))
        case .double(let value): Self.appendLine(UInt8(ascii: ","), Array(value.description.utf8), to: &buffer)
        case .bigNumber(let digits): Self.appendLine(UInt8(ascii: "("), Array(digits.utf8), to: &buffer)
        case .bulkError(let bytes): Self.appendBulk(UInt8(ascii: "!"), bytes, to: &buffer)
        case .verbatimString(let format, let text):
            Self.appendBulk(UInt8(ascii: "="), Array(format.utf8) + [UInt8(ascii: ":")] + text, to: &buffer)
        case .map(let pairs): Self.appendPairs(UInt8(ascii: "%"), pairs, to: &buffer)
        case .set(let elements): Self.appendAggregate(UInt8(ascii: "~"), elements, to: &buffer)
        case .push(let elements): Self.appendAggregate(UInt8(ascii: ">"), elements, to: &buffer)
        case .attributed(let attributes, let value):
            Self.appendPairs(UInt8(ascii: "|"), attributes, to: &buffer)
            value.encode(into: &buffer)
        }
    }

    /// The RESP3 wire form (see ``encode(into:)``).
    public var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }

    static func appendHeader(_ type: UInt8, _ count: Int, to buffer: inout [UInt8]) {
        buffer.append(type)
        buffer.append(contentsOf: String(count).utf8)
        buffer.append(contentsOf: [0x0D, 0x0A])
    }

    static func headerLength(_ count: Int) -> Int { 3 + String(count).utf8.count }

    private static func appendLine(_ type: UInt8, _ bytes: [UInt8], to buffer: inout [UInt8]) {
        buffer.append(type)
        buffer.append(contentsOf: bytes)
        buffer.append(contentsOf: [0x0D, 0x0A])
    }

    private static func appendBulk(_ type: UInt8, _ bytes: [UInt8], to buffer: inout [UInt8]) {
        appendHeader(type, bytes.count, to: &buffer)
        buffer.append(contentsOf: bytes)
        buffer.append(contentsOf: [0x0D, 0x0A])
    }

    private static func appendAggregate(_ type: UInt8, _ elements: [RESPValue], to buffer: inout [UInt8]) {
        appendHeader(type, elements.count, to: &buffer)
        for element in elements { element.encode(into: &buffer) }
    }

    private static func appendPairs(_ type: UInt8, _ pairs: [Pair], to buffer: inout [UInt8]) {
        appendHeader(type, pairs.count, to: &buffer)
        for pair in pairs {
            pair.key.encode(into: &buffer)
            pair.value.encode(into: &buffer)
        }
    }
}
