import HTTPTypes

/// A client's opening handshake that passed every server-side rule of RFC 6455 §4.2.1: the server may
/// now accept it (``makeResponse(subprotocol:extensions:headerFields:)``) or refuse it for its own reasons
/// (authentication, origin policy).
public struct UpgradeRequest: Sendable, Hashable {
    /// The request as received.
    public var request: HTTPRequest
    /// The path part of the request-target, without the query (`/chat` for `/chat?room=1`).
    public var path: String
    /// The query part of the request-target without the `?`, or `nil` when there is none.
    public var query: String?
    /// The `Host` (authority) the client addressed (RFC 6455 §4.2.1 item 2).
    public var host: String
    /// The `Sec-WebSocket-Key` exactly as sent (RFC 6455 §4.2.1 item 5).
    public var key: String
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order of preference
    /// (RFC 6455 §4.2.1 item 8).
    public var subprotocols: [String]
    /// The extensions offered in `Sec-WebSocket-Extensions`, in order (RFC 6455 §4.2.1 item 9, §9.1).
    public var extensions: [WebSocketExtension]
    /// The `Origin` header, sent by browsers (RFC 6455 §4.2.1 item 7, §10.2); `nil` when absent.
    public var origin: String?

    /// All header fields of the request.
    public var headerFields: HTTPFields { request.headerFields }

    /// Validates a client's opening handshake (RFC 6455 §4.2.1), in this order:
    ///
    /// 1. method `GET` (else 405 with `Allow: GET`, see ``ServerHandshakeError/methodNotGet``);
    /// 2. HTTP/1.1 or higher (400);
    /// 3. exactly one non-empty `Host`, taken from `request.authority` or a `Host` field (400);
    /// 4. a request path (400);
    /// 5. `Upgrade` lists the `websocket` token, case-insensitively, over any number of field lines (400); the
    ///    list may name other protocols, but the WebSocket entry must be exactly `websocket`, without a
    ///    `/version` (RFC 6455 §4.2.1 item 3, §11.2: the registered protocol name carries no version);
    /// 6. `Connection` lists the `upgrade` token, case-insensitively, over any number of field lines (400);
    /// 7. `Sec-WebSocket-Version: 13` (else 426 with `Sec-WebSocket-Version: 13`);
    /// 8. exactly one `Sec-WebSocket-Key` that is canonical base64 of 16 bytes (400);
    /// 9. `Sec-WebSocket-Protocol` elements are tokens (400);
    /// 10. `Sec-WebSocket-Extensions` follows RFC 6455 §9.1 (400).
    ///
    /// - Parameters:
    ///   - request: the request head. When it was converted from NIOHTTP1, the `Host` is in `authority`.
    ///   - httpVersion: the version from the request line, which `HTTPRequest` does not carry.
    /// - Throws: ``ServerHandshakeError`` for the first rule broken; its `response` is the answer to send.
    public init(validating request: HTTPRequest, httpVersion: HTTPProtocolVersion) throws(ServerHandshakeError) {
        let fields = request.headerFields
        guard request.method == .get else {
            throw .with(.methodNotGet, "the WebSocket handshake requires GET, not \(request.method.rawValue)")
        }
        guard httpVersion >= .http1_1 else {
            throw .with(.httpVersionTooOld, "the WebSocket handshake requires HTTP/1.1 or higher, not \(httpVersion)")
        }

        // `HTTPField.Name.host` is unavailable (HTTPTypes moves Host into `authority`), but a request built
        // by hand may still carry the field.
        let hostFieldLines = HTTPField.Name("Host").map { fields[values: $0] } ?? []
        var hosts = hostFieldLines.map { String(HTTPSyntax.trimmed($0)) }
        if let authority = request.authority { hosts.insert(authority, at: 0) }
        guard let host = hosts.first, !host.isEmpty else { throw .missingHost }
        guard hosts.allSatisfy({ $0 == host }) else { throw .multipleHosts }

        guard let target = request.path, !target.isEmpty else { throw .missingPath }

        guard HTTPSyntax.listContainsToken(fields[values: .upgrade], "websocket") else {
            let sent = fields[.upgrade].map { "'\($0)'" } ?? "absent"
            throw .with(.missingUpgradeWebSocket, "Upgrade header must contain 'websocket' (it is \(sent))")
        }
        guard HTTPSyntax.listContainsToken(fields[values: .connection], "upgrade") else {
            let sent = fields[.connection].map { "'\($0)'" } ?? "absent"
            throw .with(.missingConnectionUpgrade, "Connection header must contain 'upgrade' (it is \(sent))")
        }

        let versions = fields[values: .secWebSocketVersion].map { HTTPSyntax.trimmed($0) }
        guard versions.count == 1, versions[0] == OpeningHandshake.supportedVersion else {
            let sent = versions.isEmpty ? "absent" : "'\(versions.joined(separator: ", "))'"
            throw .with(.unsupportedVersion, "Sec-WebSocket-Version must be 13 (it is \(sent))")
        }

        let keys = fields[values: .secWebSocketKey]
        guard let rawKey = keys.first else { throw .missingKey }
        guard keys.count == 1 else { throw .multipleKeys }
        let key = String(HTTPSyntax.trimmed(rawKey))
        guard OpeningHandshake.isValidKey(key) else {
            throw .with(.malformedKey, "Sec-WebSocket-Key '\(key)' is not base64 of 16 bytes")
        }

        let subprotocols = HTTPSyntax.listElements(fields[values: .secWebSocketProtocol])
        if let bad = subprotocols.first(where: { !HTTPSyntax.isToken($0) }) {
            throw .with(.malformedSubprotocols, "Sec-WebSocket-Protocol element '\(bad)' is not a token")
        }

        let extensions: [WebSocketExtension]
        do {
            extensions = try WebSocketExtension.parse(fields[values: .secWebSocketExtensions])
        } catch {
            throw .with(.malformedExtensions, error.description)
        }

        self.request = request
        if let questionMark = target.firstIndex(of: "?") {
            self.path = String(target[..<questionMark])
            self.query = String(target[target.index(after: questionMark)...])
        } else {
            self.path = target
            self.query = nil
        }
        self.host = host
        self.key = key
        self.subprotocols = subprotocols.map(String.init)
        self.extensions = extensions
        self.origin = fields[.origin]
    }

    /// The `name=value` pairs of the query (`application/x-www-form-urlencoded`), percent-decoded, `+` read as
    /// a space. Malformed escapes are kept literally.
    public var queryItems: [QueryItem] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return QueryItem(
                name: QueryItem.formDecode(parts[0]),
                value: parts.count > 1 ? QueryItem.formDecode(parts[1]) : nil
            )
        }
    }

    /// The decoded value of the first query parameter called `name`, e.g. `queryValue("access_token")`;
    /// `nil` when absent or without a value.
    public func queryValue(_ name: String) -> String? {
        queryItems.first(where: { $0.name == name })?.value ?? nil
    }

    /// The 101 Switching Protocols response that accepts this handshake (RFC 6455 §4.2.2 item 5):
    /// `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept`, and, when chosen, the subprotocol
    /// and the accepted extensions, followed by `headerFields` (e.g. `Set-Cookie`).
    ///
    /// - Parameters:
    ///   - subprotocol: one of ``subprotocols`` (exact match), or `nil` for none.
    ///   - extensions: the accepted extensions with their response parameters; each name must be one the
    ///     client offered.
    ///   - headerFields: further fields to send.
    /// - Throws: ``ServerHandshakeError/subprotocolNotOffered`` or ``ServerHandshakeError/extensionNotOffered``
    ///   (status 500) when the choice breaks RFC 6455 §4.2.2.
    public func makeResponse(
        subprotocol: String? = nil,
        extensions: [WebSocketExtension] = [],
        headerFields: HTTPFields = [:]
    ) throws(ServerHandshakeError) -> HTTPResponse {
        var fields = HTTPFields()
        fields[.upgrade] = "websocket"
        fields[.connection] = "Upgrade"
        fields[.secWebSocketAccept] = OpeningHandshake.acceptValue(forKey: key)
        if let subprotocol {
            guard subprotocols.contains(subprotocol) else {
                throw .with(.subprotocolNotOffered, "subprotocol '\(subprotocol)' was not offered by the client")
            }
            fields[.secWebSocketProtocol] = subprotocol
        }
        if !extensions.isEmpty {
            let offered = Set(self.extensions.map(\.name))
            if let bad = extensions.first(where: { !offered.contains($0.name) }) {
                throw .with(.extensionNotOffered, "extension '\(bad.name)' was not offered by the client")
            }
            fields[.secWebSocketExtensions] = WebSocketExtension.serialize(extensions)
        }
        fields.append(contentsOf: headerFields)
        return HTTPResponse(status: .switchingProtocols, headerFields: fields)
    }
}

/// One `name[=value]` pair of a request query.
public struct QueryItem: Sendable, Hashable {
    public var name: String
    public var value: String?

    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }

    /// Percent-decodes `%XX` and turns `+` into a space. Invalid escapes are kept as they are.
    static func formDecode(_ text: Substring) -> String {
        let input = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "+") {
                output.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
                continue
            } else {
                output.append(byte)
            }
            index += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
