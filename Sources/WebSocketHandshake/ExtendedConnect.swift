import HTTPTypes

/// The request header block of an HTTP/2 stream, checked against the request rules of RFC 9113 §8.2-§8.3
/// and RFC 8441 §4 (extended CONNECT), and turned into an `HTTPRequest`.
///
/// Sans-I/O: it takes the decoded field lines (HPACK already undone, in order) and returns a value or an
/// ``ExtendedConnectError`` whose ``ExtendedConnectError/isStreamError`` is true. It allocates in proportion
/// to its input, which the HTTP/2 layer bounds with `SETTINGS_MAX_HEADER_LIST_SIZE`.
public struct HTTP2RequestHead: Sendable, Hashable {
    /// `:method`, e.g. `CONNECT`.
    public var method: String
    /// `:scheme` (`https`, `http`), absent on a classic CONNECT.
    public var scheme: String?
    /// `:authority`.
    public var authority: String?
    /// `:path` (path and query), absent on a classic CONNECT.
    public var path: String?
    /// `:protocol` (RFC 8441 §4), present on an extended CONNECT only.
    public var `protocol`: String?
    /// The request with its regular fields (in order), ready for an HTTP handler.
    public var request: HTTPRequest

    /// Whether this is an extended CONNECT (RFC 8441 §4): method CONNECT with `:protocol`.
    public var isExtendedConnect: Bool { method == "CONNECT" && `protocol` != nil }

    /// The path part of `:path` without the query (`/chat` for `/chat?room=1`); empty when there is no `:path`.
    public var pathWithoutQuery: String {
        guard let path else { return "" }
        return String(path[..<(path.firstIndex(of: "?") ?? path.endIndex)])
    }

    /// Checks one request header block, in this order (each failure is a stream error, RFC 9113 §8.1.1):
    ///
    /// 1. every name is a lowercase `token` (RFC 9113 §8.2.1), every value is free of NUL, CR, LF and of
    ///    leading or trailing space or tab (§8.2.1);
    /// 2. pseudo-header fields come first (§8.3), are among `:method`, `:scheme`, `:authority`, `:path`,
    ///    `:protocol` (§8.3.1, RFC 8441 §4), and none appears twice (§8.3.1);
    /// 3. no connection-specific field: `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`,
    ///    `upgrade`, and `te` other than `trailers` (§8.2.2);
    /// 4. `:protocol` only when `connectProtocolEnabled` (RFC 8441 §3, §5) and only with CONNECT (RFC 8441 §4);
    /// 5. `:method` is present; on a classic CONNECT `:authority` is; on an extended CONNECT `:scheme`, `:path`
    ///    and `:authority` are (RFC 8441 §4); on any other request `:scheme` and `:path` are (§8.3.1);
    /// 6. `:path` is not empty (§8.3.1).
    ///
    /// - Parameters:
    ///   - fields: the decoded header block, pseudo-header fields included, in the order received.
    ///   - connectProtocolEnabled: whether this server sent `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`.
    /// - Throws: ``ExtendedConnectError`` (a stream error) for the first rule broken.
    public init(
        fields: some Sequence<(name: String, value: String)>,
        connectProtocolEnabled: Bool
    ) throws(ExtendedConnectError) {
        var method: String?
        var scheme: String?
        var authority: String?
        var path: String?
        var proto: String?
        var regular = HTTPFields()
        var sawRegular = false

        for (name, value) in fields {
            guard Self.isLowercaseToken(name.utf8.first == UInt8(ascii: ":") ? name.utf8.dropFirst() : name.utf8[...])
            else {
                throw .with(.malformedFieldName, "field name '\(Self.printable(name))' is not a lowercase token")
            }
            guard Self.isValidValue(value) else {
                throw .with(.malformedFieldValue, "value of '\(name)' has NUL, CR, LF or surrounding whitespace")
            }
            if name.utf8.first == UInt8(ascii: ":") {
                guard !sawRegular else {
                    throw .with(.pseudoHeaderAfterRegularField, "'\(name)' follows a regular field")
                }
                func set(_ slot: inout String?) throws(ExtendedConnectError) {
                    guard slot == nil else { throw .with(.duplicatePseudoHeader, "'\(name)' appears twice") }
                    slot = value
                }
                switch name {
                case ":method": try set(&method)
                case ":scheme": try set(&scheme)
                case ":authority": try set(&authority)
                case ":path": try set(&path)
                case ":protocol": try set(&proto)
                default: throw .with(.unknownPseudoHeader, "'\(Self.printable(name))' is not a request pseudo-header")
                }
                continue
            }
            sawRegular = true
            switch name {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
                throw .with(.connectionSpecificField, "'\(name)' is not allowed in HTTP/2")
            case "te" where value != "trailers":
                throw .with(.connectionSpecificField, "'te' may only be 'trailers' in HTTP/2")
            default:
                break
            }
            guard let fieldName = HTTPField.Name(name) else {
                throw .with(.malformedFieldName, "field name '\(Self.printable(name))' is not a token")
            }
            regular.append(HTTPField(name: fieldName, value: value))
        }

        if proto != nil {
            guard connectProtocolEnabled else { throw .protocolNotEnabled }
            guard method == nil || method == "CONNECT" else { throw .protocolWithoutConnect }
        }
        guard let method else { throw .with(.missingPseudoHeader, "missing :method") }
        if method == "CONNECT" {
            if proto != nil {
                guard scheme != nil else { throw .with(.missingPseudoHeader, "extended CONNECT without :scheme") }
                guard path != nil else { throw .with(.missingPseudoHeader, "extended CONNECT without :path") }
                guard authority != nil else {
                    throw .with(.missingPseudoHeader, "extended CONNECT without :authority")
                }
            } else {
                guard authority != nil else { throw .with(.missingPseudoHeader, "CONNECT without :authority") }
                guard scheme == nil, path == nil else {
                    throw .with(.unknownPseudoHeader, "a CONNECT without :protocol has no :scheme or :path")
                }
            }
        } else {
            guard scheme != nil else { throw .with(.missingPseudoHeader, "missing :scheme") }
            guard path != nil else { throw .with(.missingPseudoHeader, "missing :path") }
        }
        if let path, path.isEmpty { throw .emptyPath }
        guard let httpMethod = HTTPRequest.Method(method) else {
            throw .with(.malformedFieldValue, ":method '\(Self.printable(method))' is not a token")
        }

        var request = HTTPRequest(method: httpMethod, scheme: scheme, authority: authority, path: path)
        if let proto { request.extendedConnectProtocol = proto }
        request.headerFields = regular
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.path = path
        self.protocol = proto
        self.request = request
    }

    /// RFC 9113 §8.2.1: field names are tokens without uppercase letters.
    private static func isLowercaseToken(_ bytes: Substring.UTF8View) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy { HTTPSyntax.isTokenCharacter($0) && !(0x41...0x5A).contains($0) }
    }

    /// RFC 9113 §8.2.1: no NUL, CR or LF, and no space or tab at either end.
    private static func isValidValue(_ value: String) -> Bool {
        let utf8 = value.utf8
        if let first = utf8.first, HTTPSyntax.isWhitespace(first) { return false }
        if let last = utf8.last, HTTPSyntax.isWhitespace(last) { return false }
        return !utf8.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D }
    }

    /// A name or value cut to 64 characters for error messages.
    private static func printable(_ text: String) -> String {
        text.count > 64 ? String(text.prefix(64)) + "…" : text
    }
}

extension UpgradeRequest {
    /// Validates a WebSocket opening handshake carried by an HTTP/2 extended CONNECT (RFC 8441 §4-§5), after
    /// the header block itself passed ``HTTP2RequestHead/init(fields:connectProtocolEnabled:)``, in this order:
    ///
    /// 1. method `CONNECT` with a `:protocol` (else 405 with `allow: CONNECT`);
    /// 2. `:protocol` is `websocket` (RFC 8441 §4; else 501);
    /// 3. `sec-websocket-version: 13` (RFC 8441 §5, RFC 6455 §4.2.1 item 6; else 400 with
    ///    `sec-websocket-version: 13`);
    /// 4. `sec-websocket-protocol` elements are tokens (400);
    /// 5. `sec-websocket-extensions` follows RFC 6455 §9.1 (400).
    ///
    /// There is no `Sec-WebSocket-Key` over HTTP/2 (RFC 8441 §5): ``key`` is empty and a key sent anyway is
    /// ignored; `Upgrade` and `Connection` cannot appear (RFC 9113 §8.2.2). ``host`` is the `:authority` and
    /// ``path`` / ``query`` come from `:path`, so the same `shouldUpgrade` hook decides as over HTTP/1.1.
    ///
    /// - Throws: ``ExtendedConnectError`` (never a stream error) for the first rule broken; its `response` is the
    ///   answer to send.
    public init(validatingExtendedConnect head: HTTP2RequestHead) throws(ExtendedConnectError) {
        guard head.method == "CONNECT", let proto = head.protocol, let target = head.path,
            let authority = head.authority
        else {
            throw .with(
                .methodNotConnect,
                "a WebSocket over HTTP/2 is opened with an extended CONNECT, not \(head.method)"
            )
        }
        guard proto == ExtendedConnect.webSocketProtocol else {
            throw .with(.unsupportedProtocol, ":protocol must be 'websocket' (it is '\(proto.prefix(64))')")
        }
        let fields = head.request.headerFields
        let versions = fields[values: .secWebSocketVersion].map { HTTPSyntax.trimmed($0) }
        guard versions.count == 1, versions[0] == OpeningHandshake.supportedVersion else {
            let sent = versions.isEmpty ? "absent" : "'\(versions.joined(separator: ", ").prefix(64))'"
            throw .with(.unsupportedVersion, "sec-websocket-version must be 13 (it is \(sent))")
        }
        let subprotocols = HTTPSyntax.listElements(fields[values: .secWebSocketProtocol])
        if let bad = subprotocols.first(where: { !HTTPSyntax.isToken($0) }) {
            throw .with(.malformedSubprotocols, "sec-websocket-protocol element '\(bad.prefix(64))' is not a token")
        }
        let extensions: [WebSocketExtension]
        do {
            extensions = try WebSocketExtension.parse(fields[values: .secWebSocketExtensions])
        } catch {
            throw .with(.malformedExtensions, error.description)
        }
        self.request = head.request
        if let questionMark = target.firstIndex(of: "?") {
            self.path = String(target[..<questionMark])
            self.query = String(target[target.index(after: questionMark)...])
        } else {
            self.path = target
            self.query = nil
        }
        self.host = authority
        self.key = ""
        self.subprotocols = subprotocols.map(String.init)
        self.extensions = extensions
        self.origin = fields[.origin]
    }

    /// Whether this handshake arrived as an HTTP/2 extended CONNECT (RFC 8441) rather than an HTTP/1.1 upgrade.
    public var isExtendedConnect: Bool { request.method == .connect }

    /// The `200` response that accepts an extended CONNECT (RFC 8441 §5): the chosen subprotocol and the accepted
    /// extensions, then `headerFields`, and no `upgrade`, `connection` or `sec-websocket-accept`. Fields of
    /// `headerFields` that HTTP/2 forbids (RFC 9113 §8.2.2: `connection`, `keep-alive`, `proxy-connection`,
    /// `transfer-encoding`, `upgrade`) and `sec-websocket-accept` are left out.
    ///
    /// - Throws: ``ServerHandshakeError/subprotocolNotOffered`` or ``ServerHandshakeError/extensionNotOffered``
    ///   (status 500), as ``makeResponse(subprotocol:extensions:headerFields:)`` does.
    public func makeExtendedConnectResponse(
        subprotocol: String? = nil,
        extensions: [WebSocketExtension] = [],
        headerFields: HTTPFields = [:]
    ) throws(ServerHandshakeError) -> HTTPResponse {
        var fields = HTTPFields()
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
        for field in headerFields where !ExtendedConnect.isForbiddenInResponse(field.name) {
            fields.append(field)
        }
        return HTTPResponse(status: .ok, headerFields: fields)
    }
}

/// Constants of RFC 8441.
public enum ExtendedConnect {
    /// The `:protocol` value of a WebSocket (RFC 8441 §4, §9.1: the "websocket" Upgrade token).
    public static let webSocketProtocol = "websocket"
    /// The identifier of `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3, §9.1).
    public static let enableConnectProtocolSetting: UInt16 = 0x8

    /// Whether a response field must not be sent on an extended CONNECT stream (RFC 9113 §8.2.2; RFC 8441 §5
    /// drops `sec-websocket-accept`).
    static func isForbiddenInResponse(_ name: HTTPField.Name) -> Bool {
        switch name.canonicalName {
        case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "sec-websocket-accept":
            return true
        default:
            return false
        }
    }
}
