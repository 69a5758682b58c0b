/// An HTTP/1.1 message head as sent on the wire (start line and header fields), plus the bytes behind it:
/// the one hand-written HTTP parser of the tests, for requests and responses.
public struct HTTPHead: Sendable {
    /// The start line: `GET /path HTTP/1.1` or `HTTP/1.1 101 Switching Protocols`.
    public var startLine: String
    public var headers: [(name: String, value: String)]
    /// What followed the empty line that ends the head.
    public var rest: [UInt8]

    static let terminator: [UInt8] = Array("\r\n\r\n".utf8)

    /// Parses the head at the start of `bytes`; nil while the empty line has not arrived.
    public init?<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        let bytes = Array(bytes)
        guard let end = bytes.firstRange(of: Self.terminator) else { return nil }
        let text = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        self.startLine = lines.removeFirst()
        self.headers = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
            var trimmed = Substring(value)
            while let last = trimmed.last, last == " " || last == "\t" { trimmed = trimmed.dropLast() }
            return (String(line[..<colon]), String(trimmed))
        }
        self.rest = Array(bytes[end.upperBound...])
    }

    /// The first value of the header field `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Whether `bytes` hold a complete head.
    public static func isComplete<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        Array(bytes).firstRange(of: terminator) != nil
    }
}

/// A parsed HTTP/1.1 response head plus what followed it.
public struct RawResponse: Sendable {
    public var head: HTTPHead
    public var status: Int

    public init?<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        guard let head = HTTPHead(bytes) else { return nil }
        let parts = head.startLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else { return nil }
        self.head = head
        self.status = code
    }

    public var headers: [(name: String, value: String)] { self.head.headers }
    public var rest: [UInt8] { self.head.rest }
    public var body: String { String(decoding: self.rest, as: UTF8.self) }
    public func header(_ name: String) -> String? { self.head.header(name) }

    /// Whether `bytes` hold a complete response head.
    public static func hasHead<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool { HTTPHead.isComplete(bytes) }

    /// The first complete frame behind the head, skipping `consumed` bytes of it.
    public func frame(after consumed: Int = 0) -> RawFrame? {
        guard self.rest.count > consumed else { return nil }
        return RawFrame.parse(self.rest.dropFirst(consumed))
    }

    /// Every complete frame behind the head.
    public var frames: [RawFrame] { RawFrame.parseAll(self.rest) }
}

/// A valid upgrade request for `path` (RFC 6455 §4.1), with `extra` header lines and the option to drop or
/// replace some of the defaults.
public func upgradeRequest(
    path: String = "/ws",
    method: String = "GET",
    version: String = "HTTP/1.1",
    dropping: Set<String> = [],
    replacing: [String: String] = [:],
    extra: [String] = []
) -> String {
    let defaults: [(String, String)] = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    var text = "\(method) \(path) \(version)\r\n"
    for (name, value) in defaults where !dropping.contains(name) {
        text += "\(name): \(replacing[name] ?? value)\r\n"
    }
    for line in extra { text += line + "\r\n" }
    return text + "\r\n"
}
