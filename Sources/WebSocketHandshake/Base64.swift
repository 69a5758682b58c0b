/// Standard base64 (RFC 4648 §4, alphabet `A–Z a–z 0–9 + /`, `=` padding), as RFC 6455 uses it for
/// `Sec-WebSocket-Key` and `Sec-WebSocket-Accept`.
///
/// Decoding is strict: the input length must be a multiple of four, padding may appear only at the end,
/// no whitespace is skipped, and the unused bits of the last symbol must be zero (so every byte string has
/// exactly one accepted encoding).
enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes `bytes` with padding.
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            output.append(alphabet[Int(b0 >> 2)])
            output.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            if let b1 {
                output.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
            } else {
                output.append(UInt8(ascii: "="))
            }
            if let b2 {
                output.append(alphabet[Int(b2 & 0x3F)])
            } else {
                output.append(UInt8(ascii: "="))
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes a padded, canonical base64 string, or returns `nil` when `string` is not one.
    static func decode(_ string: some StringProtocol) -> [UInt8]? {
        let input = Array(string.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLastQuantum = index + 4 == input.count
            guard let s0 = value(of: input[index]), let s1 = value(of: input[index + 1]) else { return nil }
            output.append(s0 << 2 | s1 >> 4)
            let c2 = input[index + 2]
            let c3 = input[index + 3]
            if c2 == UInt8(ascii: "=") {
                // "xx==": one byte; the low four bits of s1 must be zero.
                guard isLastQuantum, c3 == UInt8(ascii: "="), s1 & 0x0F == 0 else { return nil }
                return output
            }
            guard let s2 = value(of: c2) else { return nil }
            output.append((s1 & 0x0F) << 4 | s2 >> 2)
            if c3 == UInt8(ascii: "=") {
                // "xxx=": two bytes; the low two bits of s2 must be zero.
                guard isLastQuantum, s2 & 0x03 == 0 else { return nil }
                return output
            }
            guard let s3 = value(of: c3) else { return nil }
            output.append((s2 & 0x03) << 6 | s3)
            index += 4
        }
        return output
    }

    private static func value(of symbol: UInt8) -> UInt8? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return symbol - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return symbol - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return symbol - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
