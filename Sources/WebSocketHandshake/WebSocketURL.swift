/// A `ws://` or `wss://` URI (RFC 6455 §3), parsed into what the client needs to connect and to build its
/// request:
///
/// ```
/// ws-URI  = "ws:"  "//" host [ ":" port ] path [ "?" query ]
/// wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
/// ```
///
/// The scheme is case-insensitive; the port defaults to 80 (`ws`) or 443 (`wss`); an empty path is `/`;
/// IPv6 literals are written in brackets (`ws://[::1]:8080/`). Fragments are rejected (RFC 6455 §3: they
/// "MUST NOT be used"), and so is user information, which the grammar does not have.
public struct WebSocketURL: Sendable, Hashable, CustomStringConvertible {
    /// `true` for `wss` (TLS).
    public var isSecure: Bool
    /// The host without brackets: a name, an IPv4 address, or an IPv6 address such as `::1`.
    public var host: String
    /// The TCP port.
    public var port: Int
    /// The path, starting with `/`.
    public var path: String
    /// The query without `?`, or `nil`.
    public var query: String?

    /// `true` when ``host`` is an IPv6 literal (it was written in brackets).
    public var isIPv6Literal: Bool { host.contains(":") }

    /// `true` when ``host`` is an IPv4 address in dotted-decimal form (four numbers 0...255, digits only),
    /// the form for which TLS sends no server name (RFC 6066 §3).
    public var isIPv4Literal: Bool { ProxyEnvironment.isDottedDecimal(host) }

    /// The scheme, `ws` or `wss`.
    public var scheme: String { isSecure ? "wss" : "ws" }

    /// The port the scheme implies.
    public var defaultPort: Int { isSecure ? 443 : 80 }

    /// The value for the `Host` header (RFC 6455 §4.1 item 4): the host, bracketed if IPv6, and the port
    /// unless it is the default one.
    public var authority: String {
        let hostPart = isIPv6Literal ? "[\(host)]" : host
        return port == defaultPort ? hostPart : "\(hostPart):\(port)"
    }

    /// The request-target (RFC 6455 §4.1 item 3): path plus `?query`.
    public var requestTarget: String {
        query.map { "\(path)?\($0)" } ?? path
    }

    public var description: String { "\(scheme)://\(authority)\(requestTarget)" }

    /// Creates a URL from parts. `host` is given without brackets.
    public init(isSecure: Bool, host: String, port: Int? = nil, path: String = "/", query: String? = nil) {
        self.isSecure = isSecure
        self.host = host
        self.port = port ?? (isSecure ? 443 : 80)
        self.path = path.isEmpty ? "/" : path
        self.query = query
    }

    /// Parses a `ws://` or `wss://` URL.
    ///
    /// - Throws: ``WebSocketURLError`` naming the first problem found.
    public init(_ string: String) throws(WebSocketURLError) {
        let bytes = Array(string.utf8)
        if let bad = bytes.firstIndex(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            throw .with(.invalidCharacter, "character at offset \(bad) is not allowed in a URL")
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw .unsupportedScheme }
        let scheme = String(decoding: bytes[..<colon], as: UTF8.self)
        if HTTPSyntax.asciiCaseInsensitiveEquals(scheme, "ws") {
            isSecure = false
        } else if HTTPSyntax.asciiCaseInsensitiveEquals(scheme, "wss") {
            isSecure = true
        } else {
            throw .with(.unsupportedScheme, "scheme '\(scheme)' is not ws or wss")
        }
        var rest = bytes[(colon + 1)...]
        guard rest.starts(with: "//".utf8) else { throw .missingHost }
        rest = rest.dropFirst(2)
        if rest.contains(UInt8(ascii: "#")) { throw .fragmentNotAllowed }

        let authorityEnd =
            rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let remainder = rest[authorityEnd...]
        if authority.contains(UInt8(ascii: "@")) { throw .userInfoNotSupported }

        // host [ ":" port ]
        var portText: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else {
                throw .with(.invalidHost, "IPv6 literal has no closing ']'")
            }
            let literal = authority[(authority.startIndex + 1)..<close]
            guard Self.isIPv6Literal(literal) else {
                throw .with(.invalidHost, "'\(String(decoding: literal, as: UTF8.self))' is not an IPv6 address")
            }
            host = String(decoding: literal, as: UTF8.self)
            let afterClose = authority[(close + 1)...]
            if !afterClose.isEmpty {
                guard afterClose.first == UInt8(ascii: ":") else {
                    throw .with(.invalidHost, "unexpected characters after the IPv6 literal")
                }
                portText = afterClose.dropFirst()
            }
        } else {
            let hostEnd = authority.firstIndex(of: UInt8(ascii: ":")) ?? authority.endIndex
            let name = authority[..<hostEnd]
            guard !name.isEmpty else { throw .missingHost }
            guard name.allSatisfy(Self.isRegisteredNameCharacter) else {
                throw .with(.invalidHost, "'\(String(decoding: name, as: UTF8.self))' is not a valid host")
            }
            host = String(decoding: name, as: UTF8.self)
            if hostEnd < authority.endIndex { portText = authority[(hostEnd + 1)...] }
        }

        if let portText, !portText.isEmpty {
            guard portText.count <= 5, portText.allSatisfy({ (0x30...0x39).contains($0) }),
                let value = Int(String(decoding: portText, as: UTF8.self)), (1...65535).contains(value)
            else {
                throw .with(.invalidPort, "port '\(String(decoding: portText, as: UTF8.self))' is not 1...65535")
            }
            port = value
        } else {
            port = isSecure ? 443 : 80
        }

        let queryStart = remainder.firstIndex(of: UInt8(ascii: "?"))
        let pathBytes = remainder[..<(queryStart ?? remainder.endIndex)]
        path = pathBytes.isEmpty ? "/" : String(decoding: pathBytes, as: UTF8.self)
        query = queryStart.map { String(decoding: remainder[($0 + 1)...], as: UTF8.self) }
    }

    /// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2 reg-name; IPv4 addresses are a subset).
    private static func isRegisteredNameCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    /// A loose IPv6 check: hex digits, `:` and `.` (embedded IPv4), at least two colons, at most one `::`.
    private static func isIPv6Literal(_ bytes: ArraySlice<UInt8>) -> Bool {
        let allowed = bytes.allSatisfy { byte in
            QueryItem.hexValue(byte) != nil || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".")
        }
        let colons = bytes.count(where: { $0 == UInt8(ascii: ":") })
        let text = String(decoding: bytes, as: UTF8.self)
        let doubleColons = text.split(separator: "::", omittingEmptySubsequences: false).count - 1
        return allowed && colons >= 2 && colons <= 7 && doubleColons <= 1 && !text.contains(":::")
    }
}

/// A `ws://` / `wss://` URL that cannot be used (RFC 6455 §3).
public struct WebSocketURLError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case unsupportedScheme, missingHost, invalidHost, invalidPort, userInfoNotSupported, fragmentNotAllowed
        case invalidCharacter
    }

    private let code: Code
    private let detail: String?

    private init(_ code: Code, _ detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    /// The scheme is not `ws` or `wss`.
    public static let unsupportedScheme = Self(.unsupportedScheme)
    /// No `//host` part.
    public static let missingHost = Self(.missingHost)
    /// The host is not a registered name, an IPv4 address or a bracketed IPv6 address.
    public static let invalidHost = Self(.invalidHost)
    /// The port is not a number in 1...65535.
    public static let invalidPort = Self(.invalidPort)
    /// `user@host` is not part of the WebSocket URI grammar.
    public static let userInfoNotSupported = Self(.userInfoNotSupported)
    /// RFC 6455 §3: fragment identifiers must not be used in WebSocket URIs.
    public static let fragmentNotAllowed = Self(.fragmentNotAllowed)
    /// A space, control or non-ASCII character (percent-encode it).
    public static let invalidCharacter = Self(.invalidCharacter)

    static func with(_ kind: Self, _ detail: String) -> Self { Self(kind.code, detail) }

    /// Compares the kind of error only.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .unsupportedScheme: what = "the scheme must be ws or wss"
        case .missingHost: what = "missing host"
        case .invalidHost: what = "invalid host"
        case .invalidPort: what = "invalid port"
        case .userInfoNotSupported: what = "user information is not allowed in a WebSocket URL"
        case .fragmentNotAllowed: what = "fragments are not allowed in a WebSocket URL (RFC 6455 §3)"
        case .invalidCharacter: what = "invalid character"
        }
        return detail.map { "invalid WebSocket URL: \(what): \($0)" } ?? "invalid WebSocket URL: \(what)"
    }
}
