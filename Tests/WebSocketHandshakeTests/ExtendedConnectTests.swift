import HTTPTypes
import Testing
import WebSocketHandshake

/// A valid extended CONNECT header block (RFC 8441 §4-§5), with `changes` applied: a `nil` value removes the
/// field, a new name is appended.
private func block(
    _ changes: [(String, String?)] = [],
    extra: [(String, String)] = []
) -> [(name: String, value: String)] {
    var fields: [(name: String, value: String)] = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat?room=1"),
        (":authority", "example.com"),
        ("sec-websocket-version", "13"),
        ("origin", "https://example.com"),
    ]
    for (name, value) in changes {
        if let index = fields.firstIndex(where: { $0.name == name }) {
            if let value { fields[index].value = value } else { fields.remove(at: index) }
        } else if let value {
            fields.append((name, value))
        }
    }
    return fields + extra
}

private func head(_ fields: [(name: String, value: String)], enabled: Bool = true) throws(ExtendedConnectError)
    -> HTTP2RequestHead
{
    try HTTP2RequestHead(fields: fields, connectProtocolEnabled: enabled)
}

private func streamError(_ fields: [(name: String, value: String)], enabled: Bool = true) -> ExtendedConnectError? {
    do {
        _ = try head(fields, enabled: enabled)
        return nil
    } catch {
        return error
    }
}

private func responseError(_ fields: [(name: String, value: String)]) throws -> ExtendedConnectError? {
    let parsed = try head(fields)
    do {
        _ = try UpgradeRequest(validatingExtendedConnect: parsed)
        return nil
    } catch {
        return error
    }
}

@Suite("HTTP/2 request header blocks (RFC 9113 §8.2-§8.3, RFC 8441 §4)")
struct HTTP2RequestHeadTests {
    @Test("a valid extended CONNECT parses into an HTTPRequest with :protocol")
    func validExtendedConnect() throws {
        let parsed = try head(block())
        #expect(parsed.isExtendedConnect)
        #expect(parsed.method == "CONNECT")
        #expect(parsed.protocol == "websocket")
        #expect(parsed.pathWithoutQuery == "/chat")
        #expect(parsed.request.method == .connect)
        #expect(parsed.request.extendedConnectProtocol == "websocket")
        #expect(parsed.request.authority == "example.com")
        #expect(parsed.request.headerFields[.secWebSocketVersion] == "13")
    }

    @Test("a plain GET parses and is not an extended CONNECT")
    func plainGet() throws {
        let parsed = try head([(":method", "GET"), (":scheme", "https"), (":path", "/"), ("accept", "*/*")])
        #expect(!parsed.isExtendedConnect)
        #expect(parsed.request.method == .get)
        #expect(parsed.request.path == "/")
    }

    @Test("a classic CONNECT has :authority only")
    func classicConnect() throws {
        let parsed = try head([(":method", "CONNECT"), (":authority", "example.com:443")])
        #expect(!parsed.isExtendedConnect)
        #expect(streamError([(":method", "CONNECT")]) == .missingPseudoHeader)
        #expect(
            streamError([(":method", "CONNECT"), (":authority", "a"), (":path", "/")]) == .unknownPseudoHeader
        )
    }

    @Test(
        "a missing pseudo-header on an extended CONNECT is a stream error",
        arguments: [":method", ":scheme", ":path", ":authority"]
    )
    func missingPseudoHeader(name: String) {
        let error = streamError(block([(name, nil)]))
        #expect(error == .missingPseudoHeader)
        #expect(error?.isStreamError == true)
        #expect(error?.response == nil)
    }

    @Test("a GET without :scheme or :path is a stream error")
    func missingOnGet() {
        #expect(streamError([(":method", "GET"), (":path", "/")]) == .missingPseudoHeader)
        #expect(streamError([(":method", "GET"), (":scheme", "https")]) == .missingPseudoHeader)
    }

    @Test(":protocol when SETTINGS_ENABLE_CONNECT_PROTOCOL was not advertised is a stream error")
    func protocolNotEnabled() throws {
        #expect(streamError(block(), enabled: false) == .protocolNotEnabled)
        _ = try head(block(), enabled: true)
    }

    @Test(":protocol on a method other than CONNECT is a stream error")
    func protocolWithoutConnect() {
        #expect(streamError(block([(":method", "GET")])) == .protocolWithoutConnect)
    }

    @Test("an empty :path is a stream error")
    func emptyPath() {
        #expect(streamError(block([(":path", "")])) == .emptyPath)
    }

    @Test("a repeated pseudo-header is a stream error", arguments: [":method", ":path", ":protocol", ":authority"])
    func duplicate(name: String) {
        var fields = block()
        fields.insert((name, "x"), at: 1)
        #expect(streamError(fields) == .duplicatePseudoHeader)
    }

    @Test("an unknown or response pseudo-header is a stream error", arguments: [":status", ":foo"])
    func unknownPseudo(name: String) {
        var fields = block()
        fields.insert((name, "200"), at: 1)
        #expect(streamError(fields) == .unknownPseudoHeader)
    }

    @Test("a pseudo-header after a regular field is a stream error")
    func pseudoAfterRegular() {
        var fields = block([(":authority", nil)])
        fields.append((":authority", "example.com"))
        #expect(streamError(fields) == .pseudoHeaderAfterRegularField)
    }

    @Test(
        "connection-specific fields are stream errors",
        arguments: [
            ("connection", "upgrade"), ("upgrade", "websocket"), ("keep-alive", "5"),
            ("proxy-connection", "x"), ("transfer-encoding", "chunked"), ("te", "gzip"),
        ]
    )
    func connectionSpecific(name: String, value: String) {
        #expect(streamError(block(extra: [(name, value)])) == .connectionSpecificField)
    }

    @Test("te: trailers is allowed")
    func teTrailers() throws {
        _ = try head(block(extra: [("te", "trailers")]))
    }

    @Test("uppercase or non-token field names are stream errors", arguments: ["Origin", "x y", "", ":Path", "a\u{0}"])
    func badNames(name: String) {
        #expect(streamError(block(extra: [(name, "v")])) == .malformedFieldName)
    }

    @Test(
        "values with NUL, CR, LF or surrounding whitespace are stream errors",
        arguments: ["a\r\nb", "a\u{0}", " a", "a\t", "a\nb"]
    )
    func badValues(value: String) {
        #expect(streamError(block(extra: [("x-test", value)])) == .malformedFieldValue)
    }
}

@Suite("WebSocket over HTTP/2: extended CONNECT validation (RFC 8441 §4-§5)")
struct ExtendedConnectUpgradeTests {
    @Test("a valid request yields an UpgradeRequest with the same fields as HTTP/1.1")
    func valid() throws {
        let fields = block(extra: [
            ("sec-websocket-protocol", "chat, superchat"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
        ])
        let request = try UpgradeRequest(validatingExtendedConnect: head(fields))
        #expect(request.isExtendedConnect)
        #expect(request.path == "/chat")
        #expect(request.query == "room=1")
        #expect(request.queryValue("room") == "1")
        #expect(request.host == "example.com")
        #expect(request.key == "")
        #expect(request.subprotocols == ["chat", "superchat"])
        #expect(request.extensions.map(\.name) == ["permessage-deflate"])
        #expect(request.origin == "https://example.com")
    }

    @Test("a method other than CONNECT on a WebSocket path gets 405 with allow: CONNECT")
    func notConnect() throws {
        let error = try responseError([(":method", "GET"), (":scheme", "https"), (":path", "/chat")])
        #expect(error == .methodNotConnect)
        #expect(error?.response?.status == .methodNotAllowed)
        #expect(error?.response?.headerFields[.allow] == "CONNECT")
        #expect(error?.isStreamError == false)
    }

    @Test("a :protocol other than websocket gets 501, never a hang", arguments: ["WebSocket", "connect-udp", "h2c"])
    func wrongProtocol(proto: String) throws {
        let error = try responseError(block([(":protocol", proto)]))
        #expect(error == .unsupportedProtocol)
        #expect(error?.response?.status == .notImplemented)
    }

    @Test(
        "a wrong or missing version gets 400 with sec-websocket-version: 13",
        arguments: ["8", "12", "13, 8", "", nil] as [String?]
    )
    func wrongVersion(version: String?) throws {
        var fields = block([("sec-websocket-version", nil)])
        if let version, !version.isEmpty { fields.append(("sec-websocket-version", version)) }
        let error = try responseError(fields)
        #expect(error == .unsupportedVersion)
        #expect(error?.response?.status == .badRequest)
        #expect(error?.response?.headerFields[.secWebSocketVersion] == "13")
        #expect(error?.response?.headerFields[.upgrade] == nil)
    }

    @Test("two version fields are refused")
    func twoVersions() throws {
        #expect(try responseError(block(extra: [("sec-websocket-version", "13")])) == .unsupportedVersion)
    }

    @Test("a non-token subprotocol gets 400")
    func badSubprotocol() throws {
        let error = try responseError(block(extra: [("sec-websocket-protocol", "chat, a b")]))
        #expect(error == .malformedSubprotocols)
        #expect(error?.response?.status == .badRequest)
    }

    @Test("a malformed extension offer gets 400")
    func badExtensions() throws {
        let fields = block(extra: [("sec-websocket-extensions", "permessage-deflate;;")])
        #expect(try responseError(fields) == .malformedExtensions)
    }

    @Test("a Sec-WebSocket-Key is not needed and is ignored (RFC 8441 §5)")
    func keyIgnored() throws {
        let request = try UpgradeRequest(validatingExtendedConnect: head(block(extra: [("sec-websocket-key", "x")])))
        #expect(request.key == "")
    }

    @Test("the success answer is 200 without upgrade, connection or sec-websocket-accept")
    func response() throws {
        let request = try UpgradeRequest(
            validatingExtendedConnect: head(block(extra: [
                ("sec-websocket-protocol", "chat"), ("sec-websocket-extensions", "permessage-deflate"),
            ]))
        )
        var extra = HTTPFields()
        extra[.connection] = "close"
        extra[.upgrade] = "websocket"
        extra[.setCookie] = "a=b"
        let response = try request.makeExtendedConnectResponse(
            subprotocol: "chat",
            extensions: [WebSocketExtension(name: "permessage-deflate")],
            headerFields: extra
        )
        #expect(response.status == .ok)
        #expect(response.headerFields[.secWebSocketProtocol] == "chat")
        #expect(response.headerFields[.secWebSocketExtensions] == "permessage-deflate")
        #expect(response.headerFields[.setCookie] == "a=b")
        #expect(response.headerFields[.upgrade] == nil)
        #expect(response.headerFields[.connection] == nil)
        #expect(response.headerFields[.secWebSocketAccept] == nil)
    }

    @Test("choosing a subprotocol or extension the client did not offer is a server error")
    func notOffered() throws {
        let request = try UpgradeRequest(validatingExtendedConnect: head(block()))
        #expect(throws: ServerHandshakeError.subprotocolNotOffered) {
            try request.makeExtendedConnectResponse(subprotocol: "chat")
        }
        #expect(throws: ServerHandshakeError.extensionNotOffered) {
            try request.makeExtendedConnectResponse(extensions: [WebSocketExtension(name: "x")])
        }
    }
}

@Suite("WebSocket over HTTP/2: the client's extended CONNECT (RFC 8441 §4-§5)")
struct ClientExtendedConnectTests {
    private func handshake() throws -> ClientHandshake {
        var extra = HTTPFields()
        extra[.origin] = "https://example.com"
        extra[.connection] = "keep-alive"
        return ClientHandshake(
            url: try WebSocketURL("wss://example.com:8443/chat?room=1"),
            key: "dGhlIHNhbXBsZSBub25jZQ==",
            subprotocols: ["chat", "superchat"],
            extensions: [WebSocketExtension(name: "permessage-deflate")],
            headerFields: extra
        )
    }

    @Test("the request has the pseudo-headers, version 13 and no HTTP/1.1-only fields")
    func request() throws {
        let request = try handshake().extendedConnectRequest
        #expect(request.method == .connect)
        #expect(request.extendedConnectProtocol == "websocket")
        #expect(request.scheme == "https")
        #expect(request.authority == "example.com:8443")
        #expect(request.path == "/chat?room=1")
        #expect(request.headerFields[.secWebSocketVersion] == "13")
        #expect(request.headerFields[.secWebSocketProtocol] == "chat, superchat")
        #expect(request.headerFields[.secWebSocketExtensions] == "permessage-deflate")
        #expect(request.headerFields[.origin] == "https://example.com")
        #expect(request.headerFields[.connection] == nil)
        #expect(request.headerFields[.upgrade] == nil)
        #expect(request.headerFields[.secWebSocketKey] == nil)
    }

    @Test("the server's request validation accepts the client's request")
    func roundTrip() throws {
        let request = try handshake().extendedConnectRequest
        var fields: [(name: String, value: String)] = [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", request.scheme ?? ""),
            (":path", request.path ?? ""), (":authority", request.authority ?? ""),
        ]
        for field in request.headerFields { fields.append((field.name.canonicalName, field.value)) }
        let upgrade = try UpgradeRequest(
            validatingExtendedConnect: HTTP2RequestHead(fields: fields, connectProtocolEnabled: true)
        )
        #expect(upgrade.subprotocols == ["chat", "superchat"])
    }

    @Test("a 200 with an offered subprotocol and extension is accepted")
    func accepts() throws {
        var fields = HTTPFields()
        fields[.secWebSocketProtocol] = "chat"
        fields[.secWebSocketExtensions] = "permessage-deflate; server_no_context_takeover"
        let negotiated = try handshake().validateExtendedConnect(HTTPResponse(status: .ok, headerFields: fields))
        #expect(negotiated.subprotocol == "chat")
        #expect(negotiated.extensions.map(\.name) == ["permessage-deflate"])
    }

    @Test("a status other than 200 fails", arguments: [101, 204, 400, 403, 501])
    func status(code: Int) throws {
        #expect(throws: ClientHandshakeError.unexpectedStatus) {
            try handshake().validateExtendedConnect(HTTPResponse(status: .init(code: code)))
        }
    }

    @Test("a subprotocol or extension that was not offered fails")
    func notOffered() throws {
        var fields = HTTPFields()
        fields[.secWebSocketProtocol] = "other"
        #expect(throws: ClientHandshakeError.subprotocolNotOffered) {
            try handshake().validateExtendedConnect(HTTPResponse(status: .ok, headerFields: fields))
        }
        fields = HTTPFields()
        fields[.secWebSocketExtensions] = "x-unknown"
        #expect(throws: ClientHandshakeError.extensionNotOffered) {
            try handshake().validateExtendedConnect(HTTPResponse(status: .ok, headerFields: fields))
        }
        fields = HTTPFields()
        fields[.secWebSocketProtocol] = "chat, superchat"
        #expect(throws: ClientHandshakeError.multipleSubprotocols) {
            try handshake().validateExtendedConnect(HTTPResponse(status: .ok, headerFields: fields))
        }
    }
}
