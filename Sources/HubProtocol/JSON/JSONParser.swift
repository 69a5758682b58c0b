/// A strict RFC 8259 parser over a contiguous UTF-8 buffer: no comments, no trailing commas, no leading zeros,
/// no NaN/Infinity, no lone surrogates, no duplicate keys, no bytes after the value except whitespace. Recursion
/// is bounded by `limits.maximumDepth` and every collection by `limits.maximumCollectionCount`.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let limits: HubProtocolLimits
    private var position = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>, limits: HubProtocolLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, limits: HubProtocolLimits) throws(HubProtocolError)
        -> JSONValue
    {
        var parser = JSONParser(bytes, limits: limits)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.error(.trailingBytes, "unexpected bytes after the JSON value")
        }
        return value
    }

    private func error(_ code: HubProtocolError.Code, _ detail: String) -> HubProtocolError {
        HubProtocolError(code, detail, offset: position)
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func expect(_ literal: StaticString, _ value: JSONValue) throws(HubProtocolError) -> JSONValue {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - position >= count else { throw error(.malformedJSON, "truncated literal") }
        let start = literal.utf8Start
        for index in 0..<count where bytes[position + index] != start[index] {
            position += index
            throw error(.malformedJSON, "invalid literal")
        }
        position += count
        return value
    }

    private mutating func parseValue() throws(HubProtocolError) -> JSONValue {
        guard let byte = current else { throw error(.malformedJSON, "expected a value, found the end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error(.malformedJSON, "unexpected byte 0x\(String(byte, radix: 16)) where a value starts")
        }
    }

    private mutating func enter() throws(HubProtocolError) {
        depth += 1
        guard depth <= limits.maximumDepth else {
            throw error(.depthLimitExceeded, "nesting deeper than \(limits.maximumDepth)")
        }
    }

    private mutating func parseArray() throws(HubProtocolError) -> JSONValue {
        try enter()
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            guard elements.count < limits.maximumCollectionCount else {
                throw error(.collectionTooLarge, "array longer than \(limits.maximumCollectionCount)")
            }
            elements.append(try parseValue())
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                depth -= 1
                return .array(elements)
            default: throw error(.malformedJSON, "expected ',' or ']' in an array")
            }
        }
    }

    private mutating func parseObject() throws(HubProtocolError) -> JSONValue {
        try enter()
        position += 1  // {
        var object = JSONObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error(.malformedJSON, "expected a string key") }
            guard object.count < limits.maximumCollectionCount else {
                throw error(.collectionTooLarge, "object with more than \(limits.maximumCollectionCount) members")
            }
            let keyStart = position
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error(.malformedJSON, "expected ':' after a key") }
            position += 1
            skipWhitespace()
            let value = try parseValue()
            guard object.insertNew(key, value) else {
                throw HubProtocolError(.duplicateKey, field: key, "key '\(key)' appears twice", offset: keyStart)
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                depth -= 1
                return .object(object)
            default: throw error(.malformedJSON, "expected ',' or '}' in an object")
            }
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    private mutating func parseHex4() throws(HubProtocolError) -> UInt32 {
        guard bytes.count - position >= 4 else { throw error(.malformedJSON, "truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Self.hexValue(bytes[position]) else { throw error(.malformedJSON, "invalid \\u escape") }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Parses a string starting at its opening quote. The fast path (no escapes) validates and copies once.
    private mutating func parseString() throws(HubProtocolError) -> String {
        position += 1  // "
        let start = position
        // Fast path: scan to the closing quote; fall back to the slow path at the first escape.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<position])
                guard let string = String(validating: raw, as: UTF8.self) else {
                    throw HubProtocolError(.invalidUTF8, "string is not valid UTF-8", offset: start)
                }
                position += 1
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error(.malformedJSON, "unescaped control character in a string") }
            position += 1
        }
        var scalars: [UInt8] = Array(bytes[start..<position])
        while true {
            guard position < bytes.count else { throw error(.malformedJSON, "unterminated string") }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                guard let string = String(validating: scalars, as: UTF8.self) else {
                    throw HubProtocolError(.invalidUTF8, "string is not valid UTF-8", offset: start)
                }
                return string
            case UInt8(ascii: "\\"):
                position += 1
                guard let escape = current else { throw error(.malformedJSON, "unterminated escape") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw error(.invalidUTF8, "high surrogate without a low surrogate") }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error(.invalidUTF8, "high surrogate without a low surrogate")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw error(.invalidUTF8, "lone low surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error(.invalidUTF8, "invalid code point") }
                    scalars.append(contentsOf: scalar.utf8)
                default: throw error(.malformedJSON, "invalid escape")
                }
            default:
                if byte < 0x20 { throw error(.malformedJSON, "unescaped control character in a string") }
                scalars.append(byte)
                position += 1
            }
        }
    }

    private mutating func digits() -> Int {
        let start = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
            position += 1
        }
        return position - start
    }

    private mutating func parseNumber() throws(HubProtocolError) -> JSONValue {
        let start = position
        let negative = current == UInt8(ascii: "-")
        if negative { position += 1 }
        let intStart = position
        let intDigits = digits()
        guard intDigits > 0 else { throw error(.malformedJSON, "a number needs digits") }
        if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") {
            position = intStart + 1
            throw error(.malformedJSON, "leading zero in a number")
        }
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            position += 1
            guard digits() > 0 else { throw error(.malformedJSON, "a fraction needs digits") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw error(.malformedJSON, "an exponent needs digits") }
        }
        let text = UnsafeBufferPointer(rebasing: bytes[start..<position])
        if integral {
            // Exact integer: accumulate in UInt64, overflow falls through to Double.
            var magnitude: UInt64 = 0
            var overflow = false
            for byte in UnsafeBufferPointer(rebasing: bytes[intStart..<position]) {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                if o1 || o2 {
                    overflow = true
                    break
                }
                magnitude = sum
            }
            if !overflow {
                if !negative {
                    return magnitude <= UInt64(Int64.max) ? .int(Int64(magnitude)) : .uint(magnitude)
                }
                if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
                if magnitude == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            }
        }
        let string = String(decoding: text, as: UTF8.self)
        guard let double = Double(string), double.isFinite else {
            throw HubProtocolError(.numberOutOfRange, "number outside the range of Double", offset: start)
        }
        return .double(double)
    }
}
