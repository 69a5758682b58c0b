/// An `http://` or `https://` URL split into what a request needs.
public struct EventSourceURL: Sendable, Hashable, CustomStringConvertible {
    /// True for `https`.
    public var isSecure: Bool
    /// The host name or address, without brackets for IPv6.
    public var host: String
    /// The port (default 80 or 443).
    public var port: Int
    /// Path and query, e.g. `/events?topic=a` (`/` when empty).
    public var target: String

    /// Parses `text`. Fragments are dropped; user info is refused.
    /// - Throws: ``EventSourceError/invalidURL(_:)``.
    public init(_ text: String) throws(EventSourceError) {
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            isSecure = false
            rest = text.dropFirst("http://".count)
        } else if lower.hasPrefix("https://") {
            isSecure = true
            rest = text.dropFirst("https://".count)
        } else {
            throw .invalidURL("not an http:// or https:// URL: \(text)")
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty, !authority.contains("@") else { throw .invalidURL("bad authority in \(text)") }
        var hostPart = authority
        var portPart: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL("bad IPv6 literal in \(text)") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL("bad authority in \(text)") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw .invalidURL("no host in \(text)") }
        host = String(hostPart)
        if let portPart, !portPart.isEmpty {
            guard let port = Int(portPart), (1...65535).contains(port), portPart.allSatisfy(\.isASCII) else {
                throw .invalidURL("bad port in \(text)")
            }
            self.port = port
        } else {
            port = isSecure ? 443 : 80
        }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidURL("path or query with spaces, controls or non-ASCII (percent-encode them): \(text)")
        }
        self.target = target
    }

    /// The `Host` field value.
    var hostField: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (isSecure ? 443 : 80) ? name : "\(name):\(port)"
    }

    var isIPLiteral: Bool {
        if host.contains(":") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    public var description: String { "\(isSecure ? "https" : "http")://\(hostField)\(target)" }
}
