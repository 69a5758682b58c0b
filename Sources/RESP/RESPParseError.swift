/// Why ``RESPParser`` refused its input: a protocol violation or a configured limit.
///
/// Each case names the rule of the Redis protocol specification (RESP2) or of `RESP3.md` that the bytes break,
/// or the ``RESPParser/Configuration`` limit they exceed. After a failure the stream is unusable (its framing is
/// lost): the connection must be closed.
public enum RESPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The first byte of a value is not one of `+ - : $ * _ # , ( ! = % ~ > |`.
    case invalidTypeByte(UInt8)
    /// A line contains LF without the CR before it (every line ends with CRLF; simple strings and errors may
    /// not contain CR or LF).
    case lineFeedWithoutCarriageReturn
    /// A CR inside a line is not followed by LF.
    case carriageReturnWithoutLineFeed
    /// The bytes of a bulk string, bulk error or verbatim string are not followed by CRLF.
    case missingBulkTerminator
    /// The length of a bulk type or the count of an aggregate is not decimal digits (or `-1` for the RESP2
    /// nulls `$-1` and `*-1`), or does not fit in 63 bits.
    case invalidLength(type: UInt8)
    /// RESP3 streamed strings and aggregates (`$?`, `*?` …) are not supported (Redis does not send them).
    case streamedTypeUnsupported(type: UInt8)
    /// `:`: not an optional sign and one or more digits, or outside the signed 64-bit range.
    case invalidInteger
    /// `,`: not `[+-]digits[.digits][(e|E)[+-]digits]`, `inf`, `-inf` or `nan` (any case, with a sign).
    case invalidDouble
    /// `#`: neither `t` nor `f`.
    case invalidBoolean
    /// `(`: not an optional sign and one or more digits.
    case invalidBigNumber
    /// `_`: anything between `_` and CRLF.
    case invalidNull
    /// `=`: shorter than 4 bytes, its fourth byte is not `:`, or its format (the first three) is not ASCII.
    case invalidVerbatimString
    /// A bulk string, bulk error or verbatim string announces `length` bytes, more than
    /// ``RESPParser/Configuration/maxBulkLength`` (`limit`). Nothing was allocated for it.
    case bulkTooLong(length: Int64, limit: Int)
    /// An aggregate announces `count` elements (pairs for maps and attributes count twice), more than
    /// ``RESPParser/Configuration/maxAggregateCount`` (`limit`).
    case aggregateTooLarge(count: Int64, limit: Int)
    /// Aggregates nest deeper than ``RESPParser/Configuration/maxDepth`` (`limit`).
    case nestingTooDeep(limit: Int)
    /// One reply (a top-level value with everything inside it, attributes included) is, or announces it will
    /// be, longer than ``RESPParser/Configuration/maxReplyBytes`` (`limit`) bytes on the wire.
    case replyTooLarge(limit: Int)

    public var description: String {
        func show(_ byte: UInt8) -> String {
            (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "0x" + String(byte, radix: 16)
        }
        return switch self {
        case .invalidTypeByte(let byte): "invalid RESP type byte \(show(byte))"
        case .lineFeedWithoutCarriageReturn: "LF without CR in a RESP line"
        case .carriageReturnWithoutLineFeed: "CR not followed by LF in a RESP line"
        case .missingBulkTerminator: "bulk data not followed by CRLF"
        case .invalidLength(let type): "invalid length after \(show(type))"
        case .streamedTypeUnsupported(let type): "streamed RESP3 type \(show(type))? is not supported"
        case .invalidInteger: "invalid RESP integer"
        case .invalidDouble: "invalid RESP3 double"
        case .invalidBoolean: "invalid RESP3 boolean"
        case .invalidBigNumber: "invalid RESP3 big number"
        case .invalidNull: "invalid RESP3 null"
        case .invalidVerbatimString: "invalid RESP3 verbatim string (needs a 3-byte format and ':')"
        case .bulkTooLong(let length, let limit): "bulk of \(length) bytes exceeds the limit of \(limit)"
        case .aggregateTooLarge(let count, let limit): "aggregate of \(count) exceeds the limit of \(limit) elements"
        case .nestingTooDeep(let limit): "aggregates nested deeper than \(limit)"
        case .replyTooLarge(let limit): "reply longer than the limit of \(limit) bytes"
        }
    }
}
