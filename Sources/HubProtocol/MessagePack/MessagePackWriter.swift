/// Writes MessagePack into a byte array, always in the shortest format for each value (fixint, fixstr, fixarray
/// and fixmap where they fit; non-negative integers in the unsigned formats, negative ones in the signed formats).
enum MessagePackWriter {
    static func write(_ value: MessagePackValue, into buffer: inout [UInt8]) {
        switch value {
        case .nil: buffer.append(0xC0)
        case .bool(let flag): buffer.append(flag ? 0xC3 : 0xC2)
        case .int(let number):
            if number >= 0 {
                writeUnsigned(UInt64(number), into: &buffer)
            } else {
                writeNegative(number, into: &buffer)
            }
        case .uint(let number): writeUnsigned(number, into: &buffer)
        case .float(let number):
            buffer.append(0xCA)
            appendBigEndian(number.bitPattern, &buffer)
        case .double(let number):
            buffer.append(0xCB)
            appendBigEndian(number.bitPattern, &buffer)
        case .string(let string): writeString(string, into: &buffer)
        case .binary(let data):
            writeLengthHeader(data.count, fix: nil, eight: 0xC4, sixteen: 0xC5, thirtyTwo: 0xC6, &buffer)
            buffer.append(contentsOf: data)
        case .array(let elements):
            writeArrayHeader(elements.count, into: &buffer)
            for element in elements { write(element, into: &buffer) }
        case .map(let pairs):
            writeMapHeader(pairs.count, into: &buffer)
            for pair in pairs {
                write(pair.key, into: &buffer)
                write(pair.value, into: &buffer)
            }
        case .ext(let type, let data):
            switch data.count {
            case 1: buffer.append(0xD4)
            case 2: buffer.append(0xD5)
            case 4: buffer.append(0xD6)
            case 8: buffer.append(0xD7)
            case 16: buffer.append(0xD8)
            default: writeLengthHeader(data.count, fix: nil, eight: 0xC7, sixteen: 0xC8, thirtyTwo: 0xC9, &buffer)
            }
            buffer.append(UInt8(bitPattern: type))
            buffer.append(contentsOf: data)
        }
    }

    static func appendBigEndian<T: FixedWidthInteger>(_ value: T, _ buffer: inout [UInt8]) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            buffer.append(UInt8(truncatingIfNeeded: value >> shift))
            shift -= 8
        }
    }

    static func writeUnsigned(_ value: UInt64, into buffer: inout [UInt8]) {
        switch value {
        case 0...0x7F: buffer.append(UInt8(value))
        case 0x80...0xFF:
            buffer.append(0xCC)
            buffer.append(UInt8(value))
        case 0x100...0xFFFF:
            buffer.append(0xCD)
            appendBigEndian(UInt16(value), &buffer)
        case 0x1_0000...0xFFFF_FFFF:
            buffer.append(0xCE)
            appendBigEndian(UInt32(value), &buffer)
        default:
            buffer.append(0xCF)
            appendBigEndian(value, &buffer)
        }
    }

    static func writeNegative(_ value: Int64, into buffer: inout [UInt8]) {
        switch value {
        case -32..<0: buffer.append(UInt8(bitPattern: Int8(value)))
        case Int64(Int8.min) ..< -32:
            buffer.append(0xD0)
            buffer.append(UInt8(bitPattern: Int8(value)))
        case Int64(Int16.min)..<Int64(Int8.min):
            buffer.append(0xD1)
            appendBigEndian(Int16(value), &buffer)
        case Int64(Int32.min)..<Int64(Int16.min):
            buffer.append(0xD2)
            appendBigEndian(Int32(value), &buffer)
        default:
            buffer.append(0xD3)
            appendBigEndian(value, &buffer)
        }
    }

    static func writeString(_ string: String, into buffer: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            writeLengthHeader(utf8.count, fix: 0xA0, fixLimit: 31, eight: 0xD9, sixteen: 0xDA, thirtyTwo: 0xDB, &buffer)
            buffer.append(contentsOf: utf8)
        }
    }

    static func writeArrayHeader(_ count: Int, into buffer: inout [UInt8]) {
        writeLengthHeader(count, fix: 0x90, fixLimit: 15, eight: nil, sixteen: 0xDC, thirtyTwo: 0xDD, &buffer)
    }

    static func writeMapHeader(_ count: Int, into buffer: inout [UInt8]) {
        writeLengthHeader(count, fix: 0x80, fixLimit: 15, eight: nil, sixteen: 0xDE, thirtyTwo: 0xDF, &buffer)
    }

    /// A length in the shortest of the given formats. Lengths above 2^32 - 1 are not representable (trap).
    private static func writeLengthHeader(
        _ count: Int, fix: UInt8?, fixLimit: Int = 0, eight: UInt8?, sixteen: UInt8, thirtyTwo: UInt8,
        _ buffer: inout [UInt8]
    ) {
        if let fix, count <= fixLimit {
            buffer.append(fix | UInt8(count))
        } else if let eight, count <= 0xFF {
            buffer.append(eight)
            buffer.append(UInt8(count))
        } else if count <= 0xFFFF {
            buffer.append(sixteen)
            appendBigEndian(UInt16(count), &buffer)
        } else {
            buffer.append(thirtyTwo)
            appendBigEndian(UInt32(count), &buffer)
        }
    }
}
