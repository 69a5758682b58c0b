/// Why hub protocol input was refused: bytes that are not the wire format, a message that breaks the hub
/// protocol's rules, or input above a ``HubProtocolLimits`` bound.
///
/// A struct over a set of named codes (rather than an enum), so that codes can be added without breaking
/// callers that switch over them. ``code`` says what went wrong, ``field`` names the message field involved
/// (when there is one) and ``detail`` is a human-readable explanation. None of the strings contain the input's
/// payload beyond field names and small numbers, so they are safe to log and to send back in a `Close` message.
public struct HubProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A named reason.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        // Syntax of the two encodings.
        /// The bytes are not JSON (RFC 8259): ``HubProtocolError/offset`` is where the parser stopped.
        public static let malformedJSON = Code("malformedJSON")
        /// The bytes are not MessagePack: a reserved format byte (0xC1) or a malformed value.
        public static let malformedMessagePack = Code("malformedMessagePack")
        /// The input ended inside a value (a MessagePack value or a length prefix cut short).
        public static let truncated = Code("truncated")
        /// A string is not valid UTF-8 (or a JSON `\u` escape names a lone surrogate).
        public static let invalidUTF8 = Code("invalidUTF8")
        /// A JSON number outside the range of `Double` (for example `1e400`).
        public static let numberOutOfRange = Code("numberOutOfRange")
        /// A JSON object or MessagePack map names the same key twice.
        public static let duplicateKey = Code("duplicateKey")
        /// Bytes follow a complete value where none are allowed.
        public static let trailingBytes = Code("trailingBytes")
        /// A value that the target encoding cannot represent (a non-finite number in JSON, a MessagePack
        /// extension or a non-string map key in JSON).
        public static let unrepresentableValue = Code("unrepresentableValue")

        // Limits (see HubProtocolLimits).
        /// A message above ``HubProtocolLimits/maximumMessageSize``.
        public static let messageTooLarge = Code("messageTooLarge")
        /// Arrays/objects/maps nested deeper than ``HubProtocolLimits/maximumDepth``.
        public static let depthLimitExceeded = Code("depthLimitExceeded")
        /// An array/object/map with more elements than ``HubProtocolLimits/maximumCollectionCount``.
        public static let collectionTooLarge = Code("collectionTooLarge")

        // Framing.
        /// A JSON text frame whose last message is not terminated by the record separator 0x1E
        /// (HubProtocol.md, "JSON Encoding"; the JS client's "Message is incomplete.").
        public static let missingRecordSeparator = Code("missingRecordSeparator")
        /// An empty JSON message (two separators in a row, or a frame that is only a separator).
        public static let emptyMessage = Code("emptyMessage")
        /// A MessagePack length prefix longer than 5 bytes or above 2^31 - 1 (HubProtocol.md, "VarInt").
        public static let invalidVarInt = Code("invalidVarInt")

        // Hub messages.
        /// A message that is not an object (JSON) or array (MessagePack), or an array too short for its type.
        public static let invalidMessage = Code("invalidMessage")
        /// A `type` outside 1...9; ``HubProtocolError/detail`` holds the number.
        public static let unknownMessageType = Code("unknownMessageType")
        /// A required field is absent; ``HubProtocolError/field`` names it.
        public static let missingField = Code("missingField")
        /// A field has the wrong type; ``HubProtocolError/field`` names it.
        public static let wrongFieldType = Code("wrongFieldType")
        /// A Completion carries both `result` and `error` (HubProtocol.md, "Completion Message Encoding").
        public static let resultAndError = Code("resultAndError")
        /// A MessagePack Completion's ResultKind is not 1, 2 or 3.
        public static let invalidResultKind = Code("invalidResultKind")

        // Handshake and negotiate.
        /// The handshake names a protocol this endpoint does not offer.
        public static let unsupportedProtocol = Code("unsupportedProtocol")
        /// The handshake names a protocol version this endpoint does not accept.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// The handshake response carries an `error` (client side).
        public static let handshakeRejected = Code("handshakeRejected")
    }

    public let code: Code
    /// The message field involved, if any (`"invocationId"`, `"arguments[1]"`, `"headers"` …).
    public let field: String?
    /// Human-readable explanation.
    public let detail: String
    /// Byte offset in the message (JSON syntax errors), if known.
    public let offset: Int?

    public init(_ code: Code, field: String? = nil, _ detail: String, offset: Int? = nil) {
        self.code = code
        self.field = field
        self.detail = detail
        self.offset = offset
    }

    public var description: String {
        var text = "\(code)"
        if let field { text += " (\(field))" }
        text += ": \(detail)"
        if let offset { text += " at byte \(offset)" }
        return text
    }

    static func missing(_ field: String) -> HubProtocolError {
        HubProtocolError(.missingField, field: field, "required field '\(field)' is missing")
    }

    static func wrongType(_ field: String, expected: String) -> HubProtocolError {
        HubProtocolError(.wrongFieldType, field: field, "field '\(field)' must be \(expected)")
    }
}
