/// One element of a `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): an extension name and its parameters,
/// for example `permessage-deflate; client_max_window_bits` or `x-foo; bar="baz"`.
///
/// Grammar (RFC 6455 §9.1, with the implied linear whitespace of RFC 2616 / `OWS` of RFC 9110):
///
/// ```
/// Sec-WebSocket-Extensions = extension-list
/// extension-list = 1#extension
/// extension      = extension-token *( ";" extension-param )
/// extension-token = registered-token
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// A quoted value must, once unescaped, be a `token` itself (RFC 6455 §9.1); parameter values are stored
/// unescaped and ``serializedValue(of:)`` re-quotes only when needed.
public struct WebSocketExtension: Sendable, Hashable, CustomStringConvertible {
    /// One `extension-param`: a name and an optional value (`nil` for a bare `token`).
    public struct Parameter: Sendable, Hashable {
        /// The parameter name, a `token`.
        public var name: String
        /// The unescaped value, or `nil` when the parameter has no `=`.
        public var value: String?

        public init(name: String, value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    /// The extension name (`extension-token`), e.g. `permessage-deflate`. Compared case-sensitively, as
    /// registered tokens are.
    public var name: String
    /// The parameters in the order they appeared.
    public var parameters: [Parameter]

    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The value of the first parameter called `name`: `nil` when absent, `.some(nil)` when present without
    /// a value.
    public func parameter(named name: String) -> String?? {
        guard let parameter = parameters.first(where: { $0.name == name }) else { return nil }
        return .some(parameter.value)
    }

    /// The serialised form of this one extension, e.g. `x-foo; a=1; b`.
    public var description: String {
        var result = name
        for parameter in parameters {
            result += "; " + parameter.name
            if let value = parameter.value {
                result += "=" + Self.serializedValue(of: value)
            }
        }
        return result
    }

    /// A parameter value as it goes on the wire: the value itself when it is a `token`, otherwise a
    /// `quoted-string` with `"` and `\` escaped.
    public static func serializedValue(of value: String) -> String {
        if HTTPSyntax.isToken(value) { return value }
        var quoted = "\""
        for character in value {
            if character == "\"" || character == "\\" { quoted.append("\\") }
            quoted.append(character)
        }
        quoted.append("\"")
        return quoted
    }

    /// Serialises a list of extensions into one `Sec-WebSocket-Extensions` field value
    /// (`a; x=1, b`), the inverse of ``parse(_:)``.
    public static func serialize(_ extensions: [WebSocketExtension]) -> String {
        extensions.map(\.description).joined(separator: ", ")
    }

    /// Parses every `Sec-WebSocket-Extensions` field line of a message (RFC 6455 §9.1) into one list, in order.
    ///
    /// Several field lines are equivalent to one line joined with commas. Whitespace around `,`, `;` and `=`
    /// is allowed, empty list elements are ignored (RFC 9110 §5.6.1), and quoted values may use `\` escapes.
    ///
    /// - Throws: ``ExtensionHeaderError`` naming the first violation of the grammar and its byte offset
    ///   within the field line. It never traps on malformed input.
    public static func parse(_ fieldValues: some Sequence<String>) throws(ExtensionHeaderError) -> [WebSocketExtension]
    {
        var result: [WebSocketExtension] = []
        for value in fieldValues {
            var parser = ExtensionListParser(Array(value.utf8))
            try parser.parseList(into: &result)
        }
        return result
    }

    /// Parses a single `Sec-WebSocket-Extensions` field value.
    public static func parse(_ fieldValue: String) throws(ExtensionHeaderError) -> [WebSocketExtension] {
        try parse(CollectionOfOne(fieldValue))
    }
}

/// A malformed `Sec-WebSocket-Extensions` header (RFC 6455 §9.1 grammar).
public struct ExtensionHeaderError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case expectedExtensionName
        case expectedParameterName
        case expectedParameterValue
        case unterminatedQuotedString
        case quotedValueNotToken
        case unexpectedCharacter
    }

    private let code: Code
    /// The byte offset in the field line at which the problem was found.
    public let offset: Int

    private init(_ code: Code, offset: Int) {
        self.code = code
        self.offset = offset
    }

    /// An extension element does not start with a `token` (e.g. `; foo` or `"x"`).
    public static let expectedExtensionName = Self(.expectedExtensionName, offset: 0)
    /// A `;` is not followed by a parameter `token`.
    public static let expectedParameterName = Self(.expectedParameterName, offset: 0)
    /// An `=` is not followed by a `token` or a `quoted-string`.
    public static let expectedParameterValue = Self(.expectedParameterValue, offset: 0)
    /// A `quoted-string` has no closing `"` (or ends in a lone `\`).
    public static let unterminatedQuotedString = Self(.unterminatedQuotedString, offset: 0)
    /// A quoted value is not a `token` once unescaped (RFC 6455 §9.1).
    public static let quotedValueNotToken = Self(.quotedValueNotToken, offset: 0)
    /// A character that the grammar does not allow where it appears (e.g. `a b`, `a;b=1=2`).
    public static let unexpectedCharacter = Self(.unexpectedCharacter, offset: 0)

    static func at(_ kind: Self, offset: Int) -> Self { Self(kind.code, offset: offset) }

    /// Compares the kind of error only, not the offset, so `error == .expectedParameterName` works.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .expectedExtensionName: what = "expected an extension name (token)"
        case .expectedParameterName: what = "expected a parameter name (token) after ';'"
        case .expectedParameterValue: what = "expected a token or quoted-string after '='"
        case .unterminatedQuotedString: what = "unterminated quoted-string"
        case .quotedValueNotToken: what = "quoted parameter value is not a token once unescaped"
        case .unexpectedCharacter: what = "unexpected character"
        }
        return "malformed Sec-WebSocket-Extensions (RFC 6455 §9.1): \(what) at offset \(offset)"
    }
}

/// A recursive-descent parser over one field line.
private struct ExtensionListParser {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, HTTPSyntax.isWhitespace(byte) { index += 1 }
    }

    private mutating func token() -> String? {
        let start = index
        while let byte = current, HTTPSyntax.isTokenCharacter(byte) { index += 1 }
        guard index > start else { return nil }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private func error(_ kind: ExtensionHeaderError) -> ExtensionHeaderError {
        .at(kind, offset: index)
    }

    /// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 9110 §5.6.4), starting at the `"`.
    private mutating func quotedString() throws(ExtensionHeaderError) -> String {
        let start = index
        index += 1  // opening quote
        var value: [UInt8] = []
        while let byte = current {
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: value, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard let escaped = current, escaped == 0x09 || (escaped >= 0x20 && escaped != 0x7F) else {
                    throw .at(.unterminatedQuotedString, offset: start)
                }
                value.append(escaped)
                index += 1
            case 0x09, 0x20...0x7E, 0x80...0xFF:
                value.append(byte)
                index += 1
            default:
                throw error(.unexpectedCharacter)
            }
        }
        throw .at(.unterminatedQuotedString, offset: start)
    }

    mutating func parseList(into result: inout [WebSocketExtension]) throws(ExtensionHeaderError) {
        while true {
            skipWhitespace()
            guard let byte = current else { return }
            if byte == UInt8(ascii: ",") {  // empty list element
                index += 1
                continue
            }
            guard let name = token() else { throw error(.expectedExtensionName) }
            var element = WebSocketExtension(name: name)
            try parseParameters(of: &element)
            result.append(element)
            skipWhitespace()
            guard let separator = current else { return }
            guard separator == UInt8(ascii: ",") else { throw error(.unexpectedCharacter) }
            index += 1
        }
    }

    private mutating func parseParameters(of element: inout WebSocketExtension) throws(ExtensionHeaderError) {
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: ";") else { return }
            index += 1
            skipWhitespace()
            guard let name = token() else { throw error(.expectedParameterName) }
            skipWhitespace()
            guard current == UInt8(ascii: "=") else {
                element.parameters.append(.init(name: name))
                continue
            }
            index += 1
            skipWhitespace()
            let valueStart = index
            let value: String
            if current == UInt8(ascii: "\"") {
                value = try quotedString()
                guard HTTPSyntax.isToken(value) else { throw .at(.quotedValueNotToken, offset: valueStart) }
            } else if let tokenValue = token() {
                value = tokenValue
            } else {
                throw error(.expectedParameterValue)
            }
            element.parameters.append(.init(name: name, value: value))
        }
    }
}
