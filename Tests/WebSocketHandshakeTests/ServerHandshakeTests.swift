import HTTPTypes
import Testing
import WebSocketHandshake

/// A valid RFC 6455 §1.2 style request, as NIOHTTPTypesHTTP1 would hand it over (Host in `authority`).
func makeUpgradeRequest(
    method: HTTPRequest.Method = .get,
    authority: String? = "server.example.com",
    path: String? = "/chat",
    _ overrides: [(String, String?)] = []
) -> HTTPRequest {
    var fields: [(String, String)] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "http://example.com"),
    ]
    for (name, value) in overrides {
        fields.removeAll { $0.0.lowercased() == name.lowercased() }
        if let value { fields.append((name, value)) }
    }
    var headerFields = HTTPFields()
    for (name, value) in fields {
        if let fieldName = HTTPField.Name(name) { headerFields.append(HTTPField(name: fieldName, value: value)) }
    }
    return HTTPRequest(method: method, scheme: "http", authority: authority, path: path, headerFields: headerFields)
}

func appending(_ request: HTTPRequest, _ name: String, _ value: String) -> HTTPRequest {
    var copy = request
    if let fieldName = HTTPField.Name(name) { copy.headerFields.append(HTTPField(name: fieldName, value: value)) }
    return copy
}

func rejection(_ request: HTTPRequest, version: HTTPProtocolVersion = .http1_1) -> ServerHandshakeError? {
    do {
        _ = try UpgradeRequest(validating: request, httpVersion: version)
        return nil
    } catch {
        return error
    }
}

@Suite("Server-side validation (RFC 6455 §4.2.1)")
struct ServerValidationTests {
    @Test("the RFC 6455 §1.2 request is accepted and its parts are exposed")
    func validRequest() throws {
        let request = makeUpgradeRequest(
            path: "/chat?room=1&access_token=a%2Bb%20c+d",
            [
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
                ("Authorization", "Bearer xyz"),
            ])
        let upgrade = try UpgradeRequest(validating: request, httpVersion: .http1_1)
        #expect(upgrade.path == "/chat")
        #expect(upgrade.query == "room=1&access_token=a%2Bb%20c+d")
        #expect(upgrade.queryValue("access_token") == "a+b c d")
        #expect(upgrade.queryValue("room") == "1")
        #expect(upgrade.queryValue("missing") == nil)
        #expect(upgrade.host == "server.example.com")
        #expect(upgrade.key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(upgrade.subprotocols == ["chat", "superchat"])
        #expect(upgrade.extensions.map(\.name) == ["permessage-deflate"])
        #expect(upgrade.origin == "http://example.com")
        #expect(upgrade.headerFields[.authorization] == "Bearer xyz")
    }

    @Test("query items: no query, empty values, malformed escapes")
    func queryItems() throws {
        let plain = try UpgradeRequest(validating: makeUpgradeRequest(path: "/"), httpVersion: .http1_1)
        #expect(plain.query == nil)
        #expect(plain.queryItems.isEmpty)
        let odd = try UpgradeRequest(validating: makeUpgradeRequest(path: "/?a&b=&c=%zz%4"), httpVersion: .http1_1)
        #expect(
            odd.queryItems == [
                QueryItem(name: "a", value: nil), QueryItem(name: "b", value: ""),
                QueryItem(name: "c", value: "%zz%4"),
            ])
    }

    @Test("HTTP/2-style versions above 1.1 are accepted")
    func newerVersion() {
        #expect(rejection(makeUpgradeRequest(), version: HTTPProtocolVersion(major: 1, minor: 2)) == nil)
    }

    @Test("a Host header field works when authority is absent")
    func hostField() throws {
        let request = appending(makeUpgradeRequest(authority: nil), "Host", "example.org:8080")
        #expect(try UpgradeRequest(validating: request, httpVersion: .http1_1).host == "example.org:8080")
    }

    @Test(
        "rejections carry the exact status",
        arguments: [
            (makeUpgradeRequest(method: .post), ServerHandshakeError.methodNotGet, 405),
            (makeUpgradeRequest(method: .head), .methodNotGet, 405),
            (makeUpgradeRequest(authority: nil), .missingHost, 400),
            (makeUpgradeRequest(authority: ""), .missingHost, 400),
            (appending(makeUpgradeRequest(), "Host", "other.example"), .multipleHosts, 400),
            (makeUpgradeRequest(path: nil), .missingPath, 400),
            (makeUpgradeRequest([("Upgrade", nil)]), .missingUpgradeWebSocket, 400),
            (makeUpgradeRequest([("Upgrade", "h2c")]), .missingUpgradeWebSocket, 400),
            (makeUpgradeRequest([("Upgrade", "websockets")]), .missingUpgradeWebSocket, 400),
            (makeUpgradeRequest([("Connection", nil)]), .missingConnectionUpgrade, 400),
            (makeUpgradeRequest([("Connection", "keep-alive")]), .missingConnectionUpgrade, 400),
            (makeUpgradeRequest([("Connection", "upgraded, keep-alive")]), .missingConnectionUpgrade, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Version", nil)]), .unsupportedVersion, 426),
            (makeUpgradeRequest([("Sec-WebSocket-Version", "8")]), .unsupportedVersion, 426),
            (makeUpgradeRequest([("Sec-WebSocket-Version", "13, 8")]), .unsupportedVersion, 426),
            (makeUpgradeRequest([("Sec-WebSocket-Key", nil)]), .missingKey, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")]), .malformedKey, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Key", "c2hvcnQ=")]), .malformedKey, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZXg=")]), .malformedKey, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==")]), .malformedKey, 400),
            (appending(makeUpgradeRequest(), "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="), .multipleKeys, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Protocol", "chat, a b")]), .malformedSubprotocols, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Protocol", "chat, \"x\"")]), .malformedSubprotocols, 400),
            (makeUpgradeRequest([("Sec-WebSocket-Extensions", "a;;")]), .malformedExtensions, 400),
        ]
    )
    func rejections(request: HTTPRequest, expected: ServerHandshakeError, status: Int) {
        let error = rejection(request)
        #expect(error == expected)
        #expect(error?.status.code == status)
        #expect(error?.response.status.code == status)
        #expect(error?.response.headerFields[.connection] == "close")
        #expect(error?.reason.isEmpty == false)
    }

    @Test("HTTP/1.0 is rejected with 400")
    func http10() {
        let error = rejection(makeUpgradeRequest(), version: .http1_0)
        #expect(error == .httpVersionTooOld)
        #expect(error?.status.code == 400)
        #expect(error?.description.contains("HTTP/1.0") == true)
    }

    @Test("405 carries Allow: GET; 426 carries Sec-WebSocket-Version: 13")
    func rejectionHeaders() {
        #expect(rejection(makeUpgradeRequest(method: .put))?.response.headerFields[.allow] == "GET")
        let tooNew = rejection(makeUpgradeRequest([("Sec-WebSocket-Version", "14")]))
        #expect(tooNew?.response.headerFields[.secWebSocketVersion] == "13")
        #expect(tooNew?.reason.contains("14") == true)
    }

    @Test("rules are checked in RFC order: the method first")
    func order() {
        let everythingWrong = makeUpgradeRequest(
            method: .post, authority: nil, [("Upgrade", nil), ("Connection", nil)])
        #expect(rejection(everythingWrong) == .methodNotGet)
        #expect(rejection(makeUpgradeRequest(authority: nil, [("Upgrade", nil)])) == .missingHost)
        #expect(
            rejection(makeUpgradeRequest([("Sec-WebSocket-Version", "8"), ("Sec-WebSocket-Key", nil)]))
                == .unsupportedVersion)
    }

    @Test(
        "Connection token lists are matched case-insensitively across lines",
        arguments: [
            ["Upgrade"], ["upgrade"], ["UPGRADE"], ["keep-alive, Upgrade"], ["keep-alive,upgrade"],
            ["Upgrade, keep-alive"], [" ,keep-alive , , Upgrade ,"], ["keep-alive", "Upgrade"],
            ["close", "foo, upgrade"],
        ]
    )
    func connectionTokens(lines: [String]) {
        var request = makeUpgradeRequest([("Connection", nil)])
        for line in lines { request = appending(request, "Connection", line) }
        #expect(rejection(request) == nil)
    }

    @Test(
        "Upgrade token lists are matched case-insensitively, among other protocols",
        arguments: [["websocket"], ["WebSocket"], ["h2c, websocket"], ["foo/2", "WEBSOCKET"], [" websocket ,"]]
    )
    func upgradeTokens(lines: [String]) {
        var request = makeUpgradeRequest([("Upgrade", nil)])
        for line in lines { request = appending(request, "Upgrade", line) }
        #expect(rejection(request) == nil)
    }

    @Test(
        "the websocket entry of Upgrade must be exactly 'websocket', without a /version",
        arguments: [["websocket/13"], ["h2c, websocket/13"], ["websocket/"], ["websockets"], ["web socket"]]
    )
    func upgradeWithVersionRefused(lines: [String]) {
        var request = makeUpgradeRequest([("Upgrade", nil)])
        for line in lines { request = appending(request, "Upgrade", line) }
        #expect(rejection(request) == .missingUpgradeWebSocket)
    }

    @Test("a key with surrounding whitespace is accepted and trimmed")
    func keyWhitespace() throws {
        let upgrade = try UpgradeRequest(
            validating: makeUpgradeRequest([("Sec-WebSocket-Key", " dGhlIHNhbXBsZSBub25jZQ==\t")]),
            httpVersion: .http1_1
        )
        #expect(upgrade.key == "dGhlIHNhbXBsZSBub25jZQ==")
    }
}

@Suite("Server response and negotiation (RFC 6455 §4.2.2)")
struct ServerResponseTests {
    func upgrade(_ overrides: [(String, String?)] = [], extra: [(String, String)] = []) throws -> UpgradeRequest {
        var request = makeUpgradeRequest(overrides)
        for (name, value) in extra { request = appending(request, name, value) }
        return try UpgradeRequest(validating: request, httpVersion: .http1_1)
    }

    @Test("the 101 response has Upgrade, Connection and the RFC accept value")
    func response() throws {
        let response = try upgrade().makeResponse()
        #expect(response.status.code == 101)
        #expect(response.headerFields[.upgrade] == "websocket")
        #expect(response.headerFields[.connection] == "Upgrade")
        #expect(response.headerFields[.secWebSocketAccept] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(response.headerFields[.secWebSocketProtocol] == nil)
        #expect(response.headerFields[.secWebSocketExtensions] == nil)
    }

    @Test("subprotocols offered over several lines; the chosen one is echoed")
    func subprotocolNegotiation() throws {
        let request = try upgrade(
            [("Sec-WebSocket-Protocol", "chat, superchat")], extra: [("Sec-WebSocket-Protocol", "v2.json")])
        #expect(request.subprotocols == ["chat", "superchat", "v2.json"])
        let response = try request.makeResponse(subprotocol: "v2.json")
        #expect(response.headerFields[.secWebSocketProtocol] == "v2.json")
    }

    @Test("choosing a subprotocol the client did not offer is a 500 error")
    func subprotocolNotOffered() throws {
        let request = try upgrade([("Sec-WebSocket-Protocol", "chat")])
        #expect(throws: ServerHandshakeError.subprotocolNotOffered) { try request.makeResponse(subprotocol: "Chat") }
        #expect(ServerHandshakeError.subprotocolNotOffered.status.code == 500)
        let none = try upgrade()
        #expect(throws: ServerHandshakeError.subprotocolNotOffered) { try none.makeResponse(subprotocol: "chat") }
    }

    @Test("accepted extensions are serialised; unoffered ones are refused")
    func extensionNegotiation() throws {
        let request = try upgrade(
            [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")],
            extra: [("Sec-WebSocket-Extensions", "x-foo")]
        )
        #expect(request.extensions.map(\.name) == ["permessage-deflate", "x-foo"])
        let accepted = WebSocketExtension(
            name: "permessage-deflate",
            parameters: [.init(name: "client_max_window_bits", value: "10")]
        )
        let response = try request.makeResponse(extensions: [accepted])
        #expect(response.headerFields[.secWebSocketExtensions] == "permessage-deflate; client_max_window_bits=10")
        #expect(throws: ServerHandshakeError.extensionNotOffered) {
            try request.makeResponse(extensions: [WebSocketExtension(name: "x-bar")])
        }
    }

    @Test("extra headers are appended to the 101 response")
    func extraHeaders() throws {
        var extra = HTTPFields()
        extra[.setCookie] = "session=1"
        let response = try upgrade().makeResponse(headerFields: extra)
        #expect(response.headerFields[.setCookie] == "session=1")
        #expect(response.headerFields[.secWebSocketAccept] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}
