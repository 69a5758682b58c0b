/// One RESP value: a reply, an element of an aggregate, or an out-of-band push.
///
/// The cases are the types of the Redis serialization protocol: RESP2 (simple string, simple error, integer,
/// bulk string with its null, array with its null; Redis protocol specification "RESP protocol description")
/// and RESP3 (null, boolean, double, big number, bulk error, verbatim string, map, set, push, and attributes;
/// redis-specifications `protocol/RESP3.md` "RESP3 types").
///
/// Strings that the protocol calls binary safe (bulk strings, bulk errors, verbatim strings) are bytes; the line
/// types (simple strings and errors, big numbers) are text decoded as UTF-8, invalid bytes replaced by U+FFFD.
public enum RESPValue: Sendable, Hashable {
    /// `+OK\r\n`: a line of text without CR or LF.
    case simpleString(String)
    /// `-ERR message\r\n`: an error reply; the first word is the error code (`ERR`, `WRONGPASS`, `NOPROTO`…).
    case simpleError(String)
    /// `:42\r\n`: a signed 64-bit integer (RESP3 calls it "number").
    case integer(Int64)
    /// `$5\r\nhello\r\n`: binary-safe bytes; `nil` for RESP2's null bulk string `$-1\r\n`.
    case bulkString([UInt8]?)
    /// `*2\r\n…`: an ordered list; `nil` for RESP2's null array `*-1\r\n`.
    case array([RESPValue]?)
    /// `_\r\n`: RESP3's single null.
    case null
    /// `#t\r\n` or `#f\r\n`.
    case boolean(Bool)
    /// `,1.5\r\n`, `,inf\r\n`, `,-inf\r\n`, `,nan\r\n`.
    case double(Double)
    /// `(12345678901234567890\r\n`: an integer outside the 64-bit range, as its decimal digits (with its sign).
    case bigNumber(String)
    /// `!21\r\nSYNTAX invalid syntax\r\n`: a binary-safe error.
    case bulkError([UInt8])
    /// `=15\r\ntxt:Some string\r\n`: text meant for humans; `format` is its three-byte type (`txt`, `mkd`).
    case verbatimString(format: String, text: [UInt8])
    /// `%1\r\n+key\r\n:1\r\n`: key-value pairs in wire order (duplicates kept).
    case map([Pair])
    /// `~2\r\n…`: an unordered collection, in wire order (duplicates kept).
    case set([RESPValue])
    /// `>3\r\n…`: out-of-band data (pub/sub messages, invalidations); the first element names its kind.
    case push([RESPValue])
    /// A value preceded by an attribute (`|1\r\n…`), when the parser is configured to surface attributes
    /// (``RESPParser/Configuration/surfaceAttributes``); otherwise attributes are read and dropped.
    indirect case attributed(attributes: [Pair], value: RESPValue)

    /// One entry of a map or an attribute.
    public struct Pair: Sendable, Hashable {
        /// The entry's key (any RESP value, RESP3 §Map type).
        public var key: RESPValue
        /// The entry's value.
        public var value: RESPValue

        public init(_ key: RESPValue, _ value: RESPValue) {
            self.key = key
            self.value = value
        }
    }
}

extension RESPValue {
    /// The value without its attributes (itself when it has none).
    public var withoutAttributes: RESPValue {
        if case .attributed(_, let value) = self { return value.withoutAttributes }
        return self
    }

    /// The bytes of a bulk string, verbatim string or simple string; `nil` for other values.
    public var bytes: [UInt8]? {
        switch withoutAttributes {
        case .bulkString(let bytes?): bytes
        case .verbatimString(_, let text): text
        case .simpleString(let string): Array(string.utf8)
        default: nil
        }
    }

    /// ``bytes`` decoded as UTF-8 (invalid bytes replaced by U+FFFD); `nil` for other values.
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The integer of an integer value; `nil` for other values.
    public var integer: Int64? {
        if case .integer(let value) = withoutAttributes { return value }
        return nil
    }

    /// The elements of an array, set or push; `nil` for other values (and for the null array).
    public var elements: [RESPValue]? {
        switch withoutAttributes {
        case .array(let elements?), .set(let elements), .push(let elements): elements
        default: nil
        }
    }

    /// Whether this is a null: RESP3's `_`, RESP2's null bulk string or null array.
    public var isNull: Bool {
        switch withoutAttributes {
        case .null, .bulkString(nil), .array(nil): true
        default: false
        }
    }

    /// The message of a simple or bulk error (code first, e.g. `WRONGPASS invalid username-password pair`);
    /// `nil` when this is not an error.
    public var errorMessage: String? {
        switch withoutAttributes {
        case .simpleError(let message): message
        case .bulkError(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}
