import HTTPTypes

/// Why a proxy negotiation (HTTP `CONNECT`, RFC 9110 §9.3.6, or SOCKS5, RFC 1928 / RFC 1929) or a proxy
/// setting failed. Compare with the static members (`error == .rejected`); ``description`` says what happened.
/// Equality compares the kind only.
public struct ProxyError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case rejected
        case malformedReply
        case replyTooLong
        case noAcceptableMethod
        case authenticationFailed
        case invalidTarget
        case invalidCredentials
        case invalidProxyURL
        case unsupportedProxyScheme
        case closedBeforeReply
    }

    private let code: Code
    private let detail: String?

    /// The HTTP proxy's status code when it answered `CONNECT` with a non-2xx status (for example 403 or 407).
    public let status: Int?
    /// The HTTP proxy's response head when it refused the tunnel.
    public let response: HTTPResponse?
    /// The SOCKS5 reply code (RFC 1928 §6 `REP`) when a SOCKS5 proxy refused the connection.
    public let socksReply: UInt8?

    private init(
        _ code: Code,
        _ detail: String? = nil,
        status: Int? = nil,
        response: HTTPResponse? = nil,
        socksReply: UInt8? = nil
    ) {
        self.code = code
        self.detail = detail
        self.status = status
        self.response = response
        self.socksReply = socksReply
    }

    /// The proxy refused the tunnel: an HTTP proxy answered `CONNECT` with a non-2xx status (see ``status``
    /// and ``response``; RFC 9110 §9.3.6), or a SOCKS5 proxy answered with a reply code other than 0
    /// "succeeded" (see ``socksReply``; RFC 1928 §6).
    public static let rejected = Self(.rejected)
    /// The proxy's answer breaks its protocol (an HTTP head that does not parse, a SOCKS version other than 5,
    /// a method that was not offered, an unknown address type).
    public static let malformedReply = Self(.malformedReply)
    /// The HTTP proxy's response head is longer than the limit, or it sent too many interim (1xx) responses.
    public static let replyTooLong = Self(.replyTooLong)
    /// RFC 1928 §3: the SOCKS5 proxy accepts none of the offered authentication methods (`X'FF'`), e.g. it
    /// wants a username and password and none was configured.
    public static let noAcceptableMethod = Self(.noAcceptableMethod)
    /// RFC 1929 §2: the SOCKS5 proxy refused the username and password (a status other than 0).
    public static let authenticationFailed = Self(.authenticationFailed)
    /// The target host cannot be sent to the proxy (empty, longer than 255 bytes for SOCKS5, or holding a
    /// space or control character).
    public static let invalidTarget = Self(.invalidTarget)
    /// The credentials cannot be sent: a Basic user-id with a colon or a control character (RFC 7617 §2), or a
    /// SOCKS5 username or password that is empty or longer than 255 bytes (RFC 1929 §2).
    public static let invalidCredentials = Self(.invalidCredentials)
    /// A proxy URL (configuration or environment variable) does not parse.
    public static let invalidProxyURL = Self(.invalidProxyURL)
    /// A proxy URL names a scheme other than `http`, `socks5` or `socks5h` (TLS to the proxy, `https://`, and
    /// SOCKS4 are not supported).
    public static let unsupportedProxyScheme = Self(.unsupportedProxyScheme)
    /// The proxy closed the connection before its answer was complete.
    public static let closedBeforeReply = Self(.closedBeforeReply)

    static func with(_ kind: Self, _ detail: String) -> Self { Self(kind.code, detail) }

    static func httpRejected(_ response: HTTPResponse) -> Self {
        Self(
            .rejected,
            "the HTTP proxy answered CONNECT with \(response.status.code) \(response.status.reasonPhrase)",
            status: response.status.code,
            response: response
        )
    }

    static func socksRejected(_ reply: UInt8) -> Self {
        Self(
            .rejected,
            "the SOCKS5 proxy answered \(reply) (\(SOCKS5Negotiation.describe(reply: reply)))",
            socksReply: reply
        )
    }

    /// Compares the kind only.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .rejected: what = "the proxy refused the tunnel"
        case .malformedReply: what = "malformed proxy reply"
        case .replyTooLong: what = "the proxy's reply is too long"
        case .noAcceptableMethod: what = "the SOCKS5 proxy accepts none of the offered authentication methods"
        case .authenticationFailed: what = "the SOCKS5 proxy refused the username and password"
        case .invalidTarget: what = "invalid target host for the proxy"
        case .invalidCredentials: what = "invalid proxy credentials"
        case .invalidProxyURL: what = "invalid proxy URL"
        case .unsupportedProxyScheme: what = "unsupported proxy scheme"
        case .closedBeforeReply: what = "the proxy closed the connection before answering"
        }
        return "proxy: \(what)" + (detail.map { ": \($0)" } ?? "")
    }
}

/// A username and password for a proxy: `Proxy-Authorization: Basic` for HTTP proxies (RFC 7617), the
/// username/password method for SOCKS5 (RFC 1929).
public struct ProxyCredentials: Sendable, Hashable {
    /// The username (Basic: the user-id, which must not contain a colon).
    public var username: String
    /// The password.
    public var password: String

    /// Creates credentials.
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The `Proxy-Authorization` value for the Basic scheme (RFC 7617 §2): `Basic ` and the base64 of
    /// `username:password` in UTF-8.
    /// - Throws: ``ProxyError/invalidCredentials`` when the username holds a colon, or either part a control
    ///   character (RFC 7617 §2).
    public func basicAuthorization() throws(ProxyError) -> String {
        let user = Array(username.utf8)
        let password = Array(password.utf8)
        if user.contains(UInt8(ascii: ":")) {
            throw .with(.invalidCredentials, "a Basic user-id must not contain ':' (RFC 7617 §2)")
        }
        if (user + password).contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .with(.invalidCredentials, "control characters are not allowed (RFC 7617 §2)")
        }
        return "Basic " + Base64.encode(user + [UInt8(ascii: ":")] + password)
    }
}

/// Where the proxy negotiation stands after ``HTTPConnectNegotiation/receive(_:)`` or
/// ``SOCKS5Negotiation/receive(_:)``.
public enum ProxyNegotiationStep: Sendable, Hashable {
    /// Every byte given was consumed and the answer is not complete: read more.
    case needMoreBytes
    /// Send `bytes` to the proxy, then call `receive` again with the input after its first `consumed` bytes
    /// (normally empty: a proxy waits for this message before it says more).
    case send([UInt8], consumed: Int)
    /// The tunnel is open: everything after the first `consumed` bytes of the input belongs to the target.
    case established(consumed: Int)
}

/// A target host as sent to a proxy: non-empty, printable ASCII without spaces (what ``WebSocketURL`` allows).
func validateProxyTarget(host: String, port: Int) throws(ProxyError) {
    guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
        throw .with(.invalidTarget, "'\(host)' is not a host name or address")
    }
    guard (1...65535).contains(port) else {
        throw .with(.invalidTarget, "port \(port) is not 1...65535")
    }
}
