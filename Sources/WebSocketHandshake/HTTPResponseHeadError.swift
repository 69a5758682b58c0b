/// Why ``HTTPResponseHeadParser`` refused a response head: one case per rule of RFC 9112 §2–§5, plus the two
/// limits of ``HTTPResponseHeadParser/Limits``.
///
/// Compare with the static members (`error == .headTooLong`); ``description`` says what exactly was wrong.
/// Equality compares the rule only, not the detail text. A client that gets any of these while waiting for
/// the opening handshake's answer must fail the WebSocket connection (RFC 6455 §4.1).
public struct HTTPResponseHeadError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case headTooLong
        case tooManyFields
        case invalidLineEnding
        case malformedStatusLine
        case unsupportedVersion
        case invalidStatusCode
        case obsoleteLineFolding
        case missingColon
        case whitespaceBeforeColon
        case invalidFieldName
        case invalidFieldValue
    }

    private let code: Code
    private let detail: String?

    private init(_ code: Code, _ detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    /// The head is longer than ``HTTPResponseHeadParser/Limits/maxHeadLength`` bytes without having ended.
    public static let headTooLong = Self(.headTooLong)
    /// The head has more than ``HTTPResponseHeadParser/Limits/maxFieldCount`` field lines.
    public static let tooManyFields = Self(.tooManyFields)
    /// RFC 9112 §2.2: a line ends in a bare LF, or a CR is not followed by LF. Only CRLF ends a line here.
    public static let invalidLineEnding = Self(.invalidLineEnding)
    /// RFC 9112 §4: the first line is not `HTTP/d.d SP 3DIGIT SP reason-phrase`.
    public static let malformedStatusLine = Self(.malformedStatusLine)
    /// RFC 9112 §2.3: the major version is not 1 (`HTTP/1.0` and `HTTP/1.1` parse; the handshake then checks
    /// the version, see ``ClientHandshakeError/httpVersionTooOld``).
    public static let unsupportedVersion = Self(.unsupportedVersion)
    /// RFC 9110 §15: the status code is outside 100…599.
    public static let invalidStatusCode = Self(.invalidStatusCode)
    /// RFC 9112 §5.2: a field line starts with whitespace (obsolete line folding), which a sender must not
    /// generate; the handshake response is then not conforming and the client fails it (RFC 6455 §4.1).
    public static let obsoleteLineFolding = Self(.obsoleteLineFolding)
    /// RFC 9112 §5: a field line has no colon.
    public static let missingColon = Self(.missingColon)
    /// RFC 9112 §5.1: whitespace between the field name and the colon.
    public static let whitespaceBeforeColon = Self(.whitespaceBeforeColon)
    /// RFC 9110 §5.1: the field name is empty or not a `token`.
    public static let invalidFieldName = Self(.invalidFieldName)
    /// RFC 9110 §5.5: the field value holds a control character other than horizontal tab (NUL, DEL …).
    public static let invalidFieldValue = Self(.invalidFieldValue)

    static func with(_ kind: Self, _ detail: String) -> Self { Self(kind.code, detail) }

    /// Compares the rule only, not the detail text.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .headTooLong: what = "the response head is too long"
        case .tooManyFields: what = "the response head has too many header fields"
        case .invalidLineEnding: what = "a line does not end in CRLF (RFC 9112 §2.2)"
        case .malformedStatusLine: what = "malformed status line (RFC 9112 §4)"
        case .unsupportedVersion: what = "unsupported HTTP version (RFC 9112 §2.3)"
        case .invalidStatusCode: what = "status code outside 100...599 (RFC 9110 §15)"
        case .obsoleteLineFolding: what = "obsolete line folding (RFC 9112 §5.2)"
        case .missingColon: what = "header field line without a colon (RFC 9112 §5)"
        case .whitespaceBeforeColon: what = "whitespace between header field name and colon (RFC 9112 §5.1)"
        case .invalidFieldName: what = "header field name is not a token (RFC 9110 §5.1)"
        case .invalidFieldValue: what = "control character in a header field value (RFC 9110 §5.5)"
        }
        return "malformed HTTP response head: \(what)" + (detail.map { ": \($0)" } ?? "")
    }
}
