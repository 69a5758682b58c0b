extension WebSocketURL {
    /// The origin (RFC 6454 §4): scheme, host (ASCII lower case) and port. Two URLs with equal origins are the
    /// same server as far as credentials go.
    public var origin: String {
        let host = String(decoding: self.host.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        return "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// Resolves a `Location` field value against this URL (RFC 9110 §10.2.2, RFC 3986 §5.2): absolute
    /// (`ws`, `wss`, and `http`/`https`, which map to `ws`/`wss`), network-path (`//host/path`), absolute-path
    /// (`/path?q`), query-only (`?q`) and relative-path (`a/b`, `../b`) references; dot segments are removed
    /// (RFC 3986 §5.2.4). A fragment is dropped (WebSocket URLs have none, RFC 6455 §3).
    ///
    /// - Throws: ``WebSocketURLError`` when the result is not a valid WebSocket URL (another scheme, user
    ///   information, a bad host or port).
    public func resolving(_ location: String) throws(WebSocketURLError) -> WebSocketURL {
        var reference = Substring(location)
        if let hash = reference.firstIndex(of: "#") { reference = reference[..<hash] }
        // A scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" before any "/", "?".
        if let colon = reference.firstIndex(of: ":"),
            let first = reference.first, first.isASCII, first.isLetter,
            reference[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        {
            let scheme = reference[..<colon].lowercased()
            let rest = reference[colon...]
            switch scheme {
            case "ws", "http": return try WebSocketURL("ws" + String(rest))
            case "wss", "https": return try WebSocketURL("wss" + String(rest))
            default: throw .with(.unsupportedScheme, "redirect to scheme '\(scheme)'")
            }
        }
        if reference.hasPrefix("//") {
            return try WebSocketURL(scheme + ":" + String(reference))
        }
        var result = self
        let queryStart = reference.firstIndex(of: "?")
        let pathPart = reference[..<(queryStart ?? reference.endIndex)]
        let query = queryStart.map { String(reference[reference.index(after: $0)...]) }
        if pathPart.isEmpty {
            if let query { result.query = query }
        } else {
            let merged: String
            if pathPart.hasPrefix("/") {
                merged = String(pathPart)
            } else {
                let base = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "/"
                merged = base + String(pathPart)
            }
            result.path = Self.removingDotSegments(merged)
            result.query = query
        }
        // Validate the characters by parsing the result's text.
        return try WebSocketURL(result.description)
    }

    /// RFC 3986 §5.2.4 for a path that starts with `/`.
    static func removingDotSegments(_ path: String) -> String {
        var output: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            switch segment {
            case ".":
                if isLast { output.append("") }
            case "..":
                if !output.isEmpty { output.removeLast() }
                if isLast { output.append("") }
            default:
                output.append(segment)
            }
        }
        return "/" + output.joined(separator: "/")
    }
}

/// Follows the redirects of a WebSocket opening handshake, sans-I/O: which answers redirect, where to, and
/// when to stop.
///
/// ```swift
/// var redirects = WebSocketRedirects(start: url, maxRedirects: 5)
/// // after a response with status 301/302/303/307/308:
/// let next = try redirects.follow(location: response.headerFields[.location])
/// ```
///
/// Rules: statuses 301, 302, 303, 307 and 308 redirect (RFC 9110 §15.4; the opening handshake is a `GET`, so
/// all five repeat it unchanged); the `Location` is resolved against the current URL
/// (``WebSocketURL/resolving(_:)``); a `wss` URL never redirects to `ws` (no downgrade from TLS); a URL seen
/// before in the chain is a loop; at most `maxRedirects` redirects are followed.
public struct WebSocketRedirects: Sendable, Hashable {
    /// The statuses that redirect the opening handshake.
    public static let statuses: Set<Int> = [301, 302, 303, 307, 308]

    /// The most redirects followed; one more is ``WebSocketRedirectError/tooManyRedirects``.
    public let maxRedirects: Int
    /// Every URL requested so far, the first one first; the last is the current one.
    public private(set) var chain: [WebSocketURL]

    /// The URL to request now.
    public var current: WebSocketURL { chain[chain.count - 1] }

    /// Starts a chain at `start`. `maxRedirects` counts redirects (0: follow none).
    public init(start: WebSocketURL, maxRedirects: Int = 5) {
        self.chain = [start]
        self.maxRedirects = max(0, maxRedirects)
    }

    /// Whether `status` is a redirect this type follows.
    public static func isRedirect(_ status: Int) -> Bool { statuses.contains(status) }

    /// Follows one redirect: returns the next URL and makes it ``current``.
    ///
    /// - Parameters:
    ///   - location: the response's `Location` value.
    /// - Throws: ``WebSocketRedirectError`` (`missingLocation`, `invalidLocation`, `insecureRedirect`, `loop`,
    ///   `tooManyRedirects`).
    public mutating func follow(location: String?) throws(WebSocketRedirectError) -> WebSocketURL {
        guard let location, !location.isEmpty else { throw .missingLocation }
        let next: WebSocketURL
        do {
            next = try current.resolving(String(HTTPSyntax.trimmed(location)))
        } catch {
            throw .with(.invalidLocation, "'\(location)': \(error)", urlError: error)
        }
        if current.isSecure && !next.isSecure {
            throw .with(.insecureRedirect, "\(current) redirects to \(next)")
        }
        if chain.contains(where: { $0.origin == next.origin && $0.requestTarget == next.requestTarget }) {
            throw .with(.loop, (chain + [next]).map(\.description).joined(separator: " → "))
        }
        guard chain.count <= maxRedirects else {
            throw .with(.tooManyRedirects, "more than \(maxRedirects) redirects, the last to \(next)")
        }
        chain.append(next)
        return next
    }
}

/// Why a redirect of the opening handshake is not followed. Compare with the static members; equality
/// compares the kind only.
public struct WebSocketRedirectError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case missingLocation, invalidLocation, insecureRedirect, loop, tooManyRedirects
    }

    private let code: Code
    private let detail: String?
    /// The parse error when this is ``invalidLocation``.
    public let urlError: WebSocketURLError?

    private init(_ code: Code, _ detail: String? = nil, urlError: WebSocketURLError? = nil) {
        self.code = code
        self.detail = detail
        self.urlError = urlError
    }

    /// A redirect status without a `Location` field.
    public static let missingLocation = Self(.missingLocation)
    /// The `Location` does not resolve to a `ws`/`wss` URL (see ``urlError``).
    public static let invalidLocation = Self(.invalidLocation)
    /// A redirect from `wss` to `ws`: following it would drop TLS.
    public static let insecureRedirect = Self(.insecureRedirect)
    /// The redirect leads to a URL already requested in this chain.
    public static let loop = Self(.loop)
    /// More redirects than the configured maximum.
    public static let tooManyRedirects = Self(.tooManyRedirects)

    static func with(_ kind: Self, _ detail: String, urlError: WebSocketURLError? = nil) -> Self {
        Self(kind.code, detail, urlError: urlError)
    }

    /// Compares the kind only.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .missingLocation: what = "a redirect without Location"
        case .invalidLocation: what = "the redirect's Location is not a WebSocket URL"
        case .insecureRedirect: what = "refused to follow a redirect from wss to ws"
        case .loop: what = "redirect loop"
        case .tooManyRedirects: what = "too many redirects"
        }
        return "redirect: \(what)" + (detail.map { ": \($0)" } ?? "")
    }
}
