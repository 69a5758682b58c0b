/// Writes compact JSON (no whitespace) into a byte array. Strings escape `"`, `\` and the control characters
/// (U+0000-U+001F) and leave everything else as UTF-8; integers are exact; doubles use Swift's shortest
/// round-tripping form (`1.5`, `1e-07`), which is valid JSON.
enum JSONWriter {
    enum NonFinitePolicy {
        case `throw`
        case null
    }

    static func write(_ value: JSONValue, into buffer: inout [UInt8]) throws(HubProtocolError) {
        try write(value, into: &buffer, policy: .throw)
    }

    static func write(_ value: JSONValue, into buffer: inout [UInt8], nonFinite: NonFinitePolicy) {
        // With `.null` the writer never throws.
        try? write(value, into: &buffer, policy: nonFinite)
    }

    private static func write(_ value: JSONValue, into buffer: inout [UInt8], policy: NonFinitePolicy)
        throws(HubProtocolError)
    {
        switch value {
        case .null: append("null", &buffer)
        case .bool(let flag): append(flag ? "true" : "false", &buffer)
        case .int(let number): writeInteger(number, into: &buffer)
        case .uint(let number): writeInteger(number, into: &buffer)
        case .double(let number): try writeDouble(number, into: &buffer, policy: policy)
        case .string(let string): writeString(string, into: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { buffer.append(UInt8(ascii: ",")) }
                try write(element, into: &buffer, policy: policy)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            var first = true
            for (key, member) in object {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                writeString(key, into: &buffer)
                buffer.append(UInt8(ascii: ":"))
                try write(member, into: &buffer, policy: policy)
            }
            buffer.append(UInt8(ascii: "}"))
        }
    }

    static func append(_ literal: StaticString, _ buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    static func writeInteger(_ value: some BinaryInteger, into buffer: inout [UInt8]) {
        if value >= 0 && value < 10 {
            buffer.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        buffer.append(contentsOf: String(value).utf8)
    }

    static func writeDouble(_ value: Double, into buffer: inout [UInt8], policy: NonFinitePolicy)
        throws(HubProtocolError)
    {
        guard value.isFinite else {
            if case .null = policy {
                append("null", &buffer)
                return
            }
            throw HubProtocolError(.unrepresentableValue, "JSON has no NaN or infinity")
        }
        // Swift prints integral doubles as "2.0", others in shortest form ("0.1", "1e-07", "1e+20"): all
        // valid JSON numbers that parse back to the same Double.
        buffer.append(contentsOf: value.description.utf8)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeString(_ string: String, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                buffer.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): buffer.append(byte)
                case 0x0A: buffer.append(UInt8(ascii: "n"))
                case 0x0D: buffer.append(UInt8(ascii: "r"))
                case 0x09: buffer.append(UInt8(ascii: "t"))
                case 0x08: buffer.append(UInt8(ascii: "b"))
                case 0x0C: buffer.append(UInt8(ascii: "f"))
                default:
                    buffer.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30])
                    buffer.append(hexDigits[Int(byte >> 4)])
                    buffer.append(hexDigits[Int(byte & 0xF)])
                }
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        buffer.append(UInt8(ascii: "\""))
    }
}
