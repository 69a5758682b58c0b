/// A proxy: its protocol, address and optional credentials, as written in a proxy URL
/// `[scheme://][user[:password]@]host[:port][/]` (the form curl and the `*_PROXY` variables use).
///
/// Schemes: `http` (HTTP `CONNECT`, RFC 9110 §9.3.6; the default when none is written), `socks5` and
/// `socks5h` (SOCKS5, RFC 1928). Both SOCKS5 schemes send the target's host name to the proxy, which
/// resolves it (remote DNS, what curl does for `socks5h`); this client never resolves the target itself when
/// it uses a proxy. The port defaults to 1080, as in curl. User and password are percent-decoded.
public struct ProxyURL: Sendable, Hashable, CustomStringConvertible {
    /// The proxy protocol.
    public enum Kind: Sendable, Hashable {
        /// An HTTP proxy, asked for a tunnel with `CONNECT` (RFC 9110 §9.3.6).
        case httpConnect
        /// A SOCKS5 proxy (RFC 1928), with the username/password method (RFC 1929) when credentials are set.
        case socks5
    }

    /// The proxy protocol.
    public var kind: Kind
    /// The proxy's host: a name, an IPv4 address, or an IPv6 address without brackets.
    public var host: String
    /// The proxy's TCP port.
    public var port: Int
    /// The username and password for the proxy, nil for none.
    public var credentials: ProxyCredentials?

    /// Creates a proxy from its parts.
    public init(kind: Kind, host: String, port: Int, credentials: ProxyCredentials? = nil) {
        self.kind = kind
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    /// Parses a proxy URL such as `http://proxy:3128`, `socks5h://user:secret@127.0.0.1:1080` or `proxy:8080`.
    /// - Throws: ``ProxyError/invalidProxyURL``, ``ProxyError/unsupportedProxyScheme``.
    ///
    /// Error reasons quote the URL with any user information replaced by `***`, so a password never reaches
    /// an error message or a log.
    public init(_ string: String) throws(ProxyError) {
        var rest = Substring(string)
        let shown = Self.withoutUserInformation(string)
        if rest.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            throw .with(.invalidProxyURL, "'\(shown)' holds a space, control or non-ASCII character")
        }
        if let range = rest.firstRange(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            rest = rest[range.upperBound...]
            switch scheme {
            case "http": kind = .httpConnect
            case "socks5", "socks5h": kind = .socks5
            default: throw .with(.unsupportedProxyScheme, "'\(scheme)' (use http, socks5 or socks5h)")
            }
        } else {
            kind = .httpConnect
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...] == "/" else { throw .with(.invalidProxyURL, "'\(shown)' has a path") }
            rest = rest[..<slash]
        }
        credentials = nil
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let colon = userInfo.firstIndex(of: ":")
            guard let user = Self.percentDecoded(userInfo[..<(colon ?? userInfo.endIndex)]),
                let password = Self.percentDecoded(colon.map { userInfo[userInfo.index(after: $0)...] } ?? "")
            else { throw .with(.invalidProxyURL, "bad percent-encoding in the user information") }
            credentials = ProxyCredentials(username: user, password: password)
        }
        var portText: Substring?
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw .with(.invalidProxyURL, "no ']' in '\(shown)'") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw .with(.invalidProxyURL, "'\(shown)'") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            host = String(rest)
        }
        guard !host.isEmpty else { throw .with(.invalidProxyURL, "no host in '\(shown)'") }
        if let portText, !portText.isEmpty {
            guard portText.count <= 5, let value = Int(portText), (1...65535).contains(value) else {
                throw .with(.invalidProxyURL, "port '\(portText)' is not 1...65535")
            }
            port = value
        } else {
            port = 1080
        }
    }

    public var description: String {
        let scheme = kind == .httpConnect ? "http" : "socks5h"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(credentials == nil ? "" : "***@")\(hostPart):\(port)"
    }

    /// `text` with everything between the scheme's `://` (or the start) and the last `@` replaced by `***`.
    static func withoutUserInformation(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        let start = text.firstRange(of: "://").map { $0.upperBound } ?? text.startIndex
        guard start <= at else { return text }
        return String(text[..<start]) + "***" + String(text[at...])
    }

    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(QueryItem.hexValue),
                    let low = iterator.next().flatMap(QueryItem.hexValue)
                else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The proxy settings of a process environment, read the way curl reads them, and the choice of proxy for a
/// WebSocket URL.
///
/// - `ws://` URLs use `http_proxy`, `wss://` URLs use `https_proxy`; either falls back to `all_proxy`.
/// - Each name is looked up in lower case first, then in upper case (`HTTP_PROXY`, `HTTPS_PROXY`,
///   `ALL_PROXY`, `NO_PROXY`). (curl ignores upper-case `HTTP_PROXY`, a CGI precaution; this client reads it,
///   since it is not a CGI program and the setting is opt-in.) An empty value counts as unset.
/// - `no_proxy` is a comma-separated list (spaces around entries ignored): `*` alone bypasses the proxy for
///   every host; otherwise an entry, with any leading `.` removed, bypasses hosts equal to it or ending in
///   `.` + entry, ASCII case-insensitively (`example.com` matches `example.com` and `ws.example.com`, not
///   `badexample.com`). IP addresses match exactly; IPv6 entries may be written with or without brackets.
public struct ProxyEnvironment: Sendable, Hashable {
    /// The `http_proxy` value (used for `ws://`), nil when unset or empty.
    public var httpProxy: String?
    /// The `https_proxy` value (used for `wss://`).
    public var httpsProxy: String?
    /// The `all_proxy` value (used when the scheme's own variable is unset).
    public var allProxy: String?
    /// The `no_proxy` value.
    public var noProxy: String?

    /// Reads the variables from `environment` (e.g. the process environment, or a dictionary in tests).
    public init(environment: [String: String]) {
        func value(_ name: String) -> String? {
            for key in [name, name.uppercased()] {
                if let value = environment[key], !value.isEmpty { return value }
            }
            return nil
        }
        httpProxy = value("http_proxy")
        httpsProxy = value("https_proxy")
        allProxy = value("all_proxy")
        noProxy = value("no_proxy")
    }

    /// The proxy for `url`, or nil for a direct connection (no variable set, or `no_proxy` matches its host).
    /// - Throws: ``ProxyError/invalidProxyURL`` or ``ProxyError/unsupportedProxyScheme`` for a variable that
    ///   does not parse (rather than silently connecting directly).
    public func proxy(for url: WebSocketURL) throws(ProxyError) -> ProxyURL? {
        guard let text = (url.isSecure ? httpsProxy : httpProxy) ?? allProxy else { return nil }
        if bypassesProxy(host: url.host) { return nil }
        return try ProxyURL(text)
    }

    /// Whether `no_proxy` exempts `host` (given without brackets) from the proxy.
    public func bypassesProxy(host: String) -> Bool {
        guard let noProxy else { return false }
        let host = Self.lowercased(host.hasSuffix(".") ? String(host.dropLast()) : host)
        let hostIsIPAddress = host.contains(":") || Self.isDottedDecimal(host)
        for rawEntry in noProxy.split(separator: ",") {
            var entry = Substring(Self.lowercased(String(HTTPSyntax.trimmed(rawEntry))))
            if entry == "*" { return true }
            if entry.hasPrefix("[") && entry.hasSuffix("]") { entry = entry.dropFirst().dropLast() }
            while entry.hasPrefix(".") { entry = entry.dropFirst() }
            if entry.hasSuffix(".") { entry = entry.dropLast() }
            guard !entry.isEmpty else { continue }
            if host == entry { return true }
            // A name matches its subdomains too; an IP address only itself ("0.0.1" must not bypass 127.0.0.1).
            if !hostIsIPAddress && host.hasSuffix("." + String(entry)) { return true }
        }
        return false
    }

    /// Whether `text` is four dot-separated decimal numbers of 0...255 (digits only, no signs).
    static func isDottedDecimal(_ text: String) -> Bool { SOCKS5Negotiation.ipv4(text) != nil }

    private static func lowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
