/// An incremental, fail-fast UTF-8 validator (RFC 3629 §4, as required for text messages by RFC 6455 §8.1).
///
/// Feed a message's bytes in any number of pieces; a code point may straddle pieces. Validation stops at the
/// first byte that cannot begin or continue a well-formed sequence (the Unicode "maximal subpart" rule of
/// Table 3-7), so an invalid message is rejected as soon as the offending byte arrives, not at its end.
/// Rejected: stray continuation bytes, `0xC0`, `0xC1` and `0xF5`-`0xFF`, overlong forms, UTF-16 surrogates
/// (U+D800-U+DFFF), code points above U+10FFFF, and (at ``isComplete``) a sequence cut short.
///
/// Runs of ASCII are skipped 16 bytes at a time. The validator holds 3 bytes of state and never allocates.
public struct UTF8Validator: Sendable, Hashable {
    /// Continuation bytes still expected for the current code point (0...3).
    private var remaining: UInt8 = 0
    /// Inclusive bounds for the next continuation byte (narrowed after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// Whether everything fed so far ends on a code point boundary. A message is valid when every piece
    /// validated and this is `true` after the last one.
    @inlinable
    public var isComplete: Bool { remainingContinuationBytes == 0 }

    @usableFromInline
    internal var remainingContinuationBytes: UInt8 { remaining }

    /// Forgets any partial code point, to start a new message.
    public mutating func reset() { self = UTF8Validator() }

    /// Validates the next piece of a message.
    ///
    /// - Parameter bytes: the next bytes of the message; borrowed for the duration of the call.
    /// - Returns: `nil` when every byte is acceptable so far, or the index within `bytes` of the first byte that
    ///   makes the sequence invalid. After a failure the validator's state is unspecified; call ``reset()``.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        var index = 0
        var remaining = self.remaining
        var lower = self.lower
        var upper = self.upper
        defer {
            self.remaining = remaining
            self.lower = lower
            self.upper = upper
        }
        while index < count {
            if remaining == 0 {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                if byte < 0x80 {
                    // ASCII fast path: then 16 bytes at a time while no byte has its high bit set.
                    index += 1
                    while count - index >= 16 {
                        let a = (base + index).loadUnaligned(as: UInt64.self)
                        let b = (base + index + 8).loadUnaligned(as: UInt64.self)
                        if (a | b) & 0x8080_8080_8080_8080 != 0 { break }
                        index += 16
                    }
                    continue
                }
                // Fast path: the whole sequence is in this piece; check it without the carried state.
                if count - index >= 4 {
                    let b1 = base.load(fromByteOffset: index + 1, as: UInt8.self)
                    switch byte {
                    case 0xC2...0xDF:
                        guard b1 & 0xC0 == 0x80 else { return index + 1 }
                        index += 2
                        continue
                    case 0xE0...0xEF:
                        let low: UInt8 = byte == 0xE0 ? 0xA0 : 0x80
                        let high: UInt8 = byte == 0xED ? 0x9F : 0xBF
                        guard b1 >= low && b1 <= high else { return index + 1 }
                        guard base.load(fromByteOffset: index + 2, as: UInt8.self) & 0xC0 == 0x80 else {
                            return index + 2
                        }
                        index += 3
                        continue
                    case 0xF0...0xF4:
                        let low: UInt8 = byte == 0xF0 ? 0x90 : 0x80
                        let high: UInt8 = byte == 0xF4 ? 0x8F : 0xBF
                        guard b1 >= low && b1 <= high else { return index + 1 }
                        guard base.load(fromByteOffset: index + 2, as: UInt8.self) & 0xC0 == 0x80 else {
                            return index + 2
                        }
                        guard base.load(fromByteOffset: index + 3, as: UInt8.self) & 0xC0 == 0x80 else {
                            return index + 3
                        }
                        index += 4
                        continue
                    default:
                        return index
                    }
                }
                index += 1
                switch byte {
                case 0x00...0x7F:
                    continue
                case 0xC2...0xDF:
                    remaining = 1
                    lower = 0x80
                    upper = 0xBF
                case 0xE0:
                    remaining = 2
                    lower = 0xA0
                    upper = 0xBF
                case 0xED:
                    remaining = 2
                    lower = 0x80
                    upper = 0x9F
                case 0xE1...0xEC, 0xEE...0xEF:
                    remaining = 2
                    lower = 0x80
                    upper = 0xBF
                case 0xF0:
                    remaining = 3
                    lower = 0x90
                    upper = 0xBF
                case 0xF1...0xF3:
                    remaining = 3
                    lower = 0x80
                    upper = 0xBF
                case 0xF4:
                    remaining = 3
                    lower = 0x80
                    upper = 0x8F
                default:
                    return index - 1
                }
            } else {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                guard byte >= lower && byte <= upper else { return index }
                index += 1
                remaining -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return nil
    }

    /// Validates a complete message in one call.
    ///
    /// - Returns: `true` when `bytes` is well-formed UTF-8.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = UTF8Validator()
        return validator.validate(bytes) == nil && validator.isComplete
    }
}
