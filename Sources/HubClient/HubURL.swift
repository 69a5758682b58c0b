/// A hub URL split into the parts negotiate and the WebSocket need: `http(s)://` or `ws(s)://`, host, port,
/// path and query.
struct HubURL: Sendable, Equatable {
    var secure: Bool
    var host: String
    var port: Int
    var path: String
    var query: String?

    /// Parses `scheme://host[:port][/path][?query]`; IPv6 hosts in brackets. Nil when malformed.
    init?(_ text: String) {
        let secure: Bool
        let rest: Substring
        if let range = text.firstRange(of: "://") {
            switch text[..<range.lowerBound].lowercased() {
            case "http", "ws": secure = false
            case "https", "wss": secure = true
            default: return nil
            }
            rest = text[range.upperBound...]
        } else {
            return nil
        }
        let withoutFragment = rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let authorityEnd = withoutFragment.firstIndex { $0 == "/" || $0 == "?" } ?? withoutFragment.endIndex
        let authority = withoutFragment[..<authorityEnd]
        var pathAndQuery = withoutFragment[authorityEnd...]
        var query: String?
        if let mark = pathAndQuery.firstIndex(of: "?") {
            query = String(pathAndQuery[pathAndQuery.index(after: mark)...])
            pathAndQuery = pathAndQuery[..<mark]
        }
        var host: Substring
        var port: Int = secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let number = Int(after.dropFirst()), (1...65535).contains(number) else { return nil }
                port = number
            } else if !after.isEmpty {
                return nil
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                return nil
            }
            port = number
        } else {
            host = authority
        }
        guard !host.isEmpty, !host.contains("@") else { return nil }
        self.secure = secure
        self.host = String(host)
        self.port = port
        self.path = pathAndQuery.isEmpty ? "/" : String(pathAndQuery)
        self.query = query?.isEmpty == true ? nil : query
    }

    /// `host:port` for the `Host` header, with brackets for IPv6.
    var hostHeader: String {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let isDefault = port == (secure ? 443 : 80)
        return isDefault ? bracketed : "\(bracketed):\(port)"
    }

    /// The request target for negotiate: `{path}/negotiate?{query&}negotiateVersion=1`.
    var negotiateTarget: String {
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        let prefix = query.map { "\($0)&" } ?? ""
        return "\(base)/negotiate?\(prefix)negotiateVersion=1"
    }

    /// The `ws(s)://` URL of the WebSocket transport, with `id=` when negotiated.
    func webSocketURL(id: String?) -> String {
        var queryItems: [String] = []
        if let query { queryItems.append(query) }
        if let id { queryItems.append("id=\(Self.percentEncoded(id))") }
        let queryText = queryItems.isEmpty ? "" : "?" + queryItems.joined(separator: "&")
        return "\(secure ? "wss" : "ws")://\(hostHeaderWithPort)\(path)\(queryText)"
    }

    private var hostHeaderWithPort: String {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "\(bracketed):\(port)"
    }

    /// Percent-encodes everything outside RFC 3986 unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%"
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0F)]))
            }
        }
        return result
    }
}
