import HTTPTypes
import Testing
import WebSocketTestSupport
import WebSocketHandshake

@Suite("ws:// and wss:// URLs (RFC 6455 §3)")
struct WebSocketURLTests {
    @Test(
        "valid URLs",
        arguments: [
            ("ws://example.com", false, "example.com", 80, "/", nil as String?, "example.com"),
            ("wss://example.com", true, "example.com", 443, "/", nil, "example.com"),
            ("WS://Example.com:8080/chat", false, "Example.com", 8080, "/chat", nil, "Example.com:8080"),
            ("wss://example.com:443/a/b?x=1&y=2", true, "example.com", 443, "/a/b", "x=1&y=2", "example.com"),
            ("ws://example.com?x", false, "example.com", 80, "/", "x", "example.com"),
            ("ws://127.0.0.1:9001/", false, "127.0.0.1", 9001, "/", nil, "127.0.0.1:9001"),
            ("ws://[::1]:9001/p", false, "::1", 9001, "/p", nil, "[::1]:9001"),
            ("wss://[2001:db8::7]/", true, "2001:db8::7", 443, "/", nil, "[2001:db8::7]"),
            ("ws://[::ffff:192.0.2.1]", false, "::ffff:192.0.2.1", 80, "/", nil, "[::ffff:192.0.2.1]"),
            ("ws://host:/x", false, "host", 80, "/x", nil, "host"),
            ("ws://host:80/x", false, "host", 80, "/x", nil, "host"),
        ]
    )
    func valid(
        text: String,
        secure: Bool,
        host: String,
        port: Int,
        path: String,
        query: String?,
        authority: String
    ) throws {
        let url = try WebSocketURL(text)
        #expect(url.isSecure == secure)
        #expect(url.host == host)
        #expect(url.port == port)
        #expect(url.path == path)
        #expect(url.query == query)
        #expect(url.authority == authority)
    }

    @Test("request target and description")
    func requestTarget() throws {
        let url = try WebSocketURL("ws://[::1]:81/a?b=c")
        #expect(url.requestTarget == "/a?b=c")
        #expect(url.description == "ws://[::1]:81/a?b=c")
        #expect(url.isIPv6Literal)
    }

    @Test(
        "invalid URLs",
        arguments: [
            ("http://example.com/", WebSocketURLError.unsupportedScheme),
            ("example.com", .unsupportedScheme),
            ("ws:example.com", .missingHost),
            ("ws://", .missingHost),
            ("ws://:80/", .missingHost),
            ("ws://exa mple.com/", .invalidCharacter),
            ("ws://example.com/é", .invalidCharacter),
            ("ws://example.com/#frag", .fragmentNotAllowed),
            ("ws://user:pw@example.com/", .userInfoNotSupported),
            ("ws://example.com:0/", .invalidPort),
            ("ws://example.com:65536/", .invalidPort),
            ("ws://example.com:8a/", .invalidPort),
            ("ws://example.com:-1/", .invalidPort),
            ("ws://[::1/", .invalidHost),
            ("ws://[::1]x/", .invalidHost),
            ("ws://[not-ip]/", .invalidHost),
            ("ws://[1:2]]/", .invalidHost),
            ("ws://exa<mple/", .invalidHost),
        ]
    )
    func invalid(text: String, expected: WebSocketURLError) {
        #expect(throws: expected) { try WebSocketURL(text) }
    }
}

@Suite("Client handshake (RFC 6455 §4.1)")
struct ClientHandshakeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    func handshake(subprotocols: [String] = [], extensions: [WebSocketExtension] = []) throws -> ClientHandshake {
        ClientHandshake(
            url: try WebSocketURL("wss://server.example.com:8443/chat?x=1"),
            key: Self.key,
            subprotocols: subprotocols,
            extensions: extensions
        )
    }

    /// A response head as ``HTTPResponseHeadParser`` would return it: the RFC 6455 §1.3 answer by default.
    func response(
        status: Int = 101,
        version: HTTPProtocolVersion = .http1_1,
        _ overrides: [(String, String?)] = [],
        extra: [(String, String)] = []
    ) -> HTTPResponseHead {
        var fields: [(String, String)] = [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", Self.accept),
        ]
        for (name, value) in overrides {
            fields.removeAll { $0.0 == name }
            if let value { fields.append((name, value)) }
        }
        fields += extra
        var headerFields = HTTPFields()
        for (name, value) in fields {
            if let fieldName = HTTPField.Name(name) { headerFields.append(HTTPField(name: fieldName, value: value)) }
        }
        return HTTPResponseHead(
            version: version,
            response: HTTPResponse(status: .init(code: status), headerFields: headerFields)
        )
    }

    @Test("the request has every required field")
    func request() throws {
        var fields = HTTPFields()
        fields[.origin] = "https://example.com"
        let request = ClientHandshake(
            url: try WebSocketURL("wss://server.example.com:8443/chat?x=1"),
            key: Self.key,
            subprotocols: ["chat", "superchat"],
            extensions: [
                WebSocketExtension(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits")])
            ],
            headerFields: fields
        ).request
        #expect(request.method == .get)
        #expect(request.authority == "server.example.com:8443")
        #expect(request.path == "/chat?x=1")
        #expect(request.scheme == "https")
        #expect(request.headerFields[.upgrade] == "websocket")
        #expect(request.headerFields[.connection] == "Upgrade")
        #expect(request.headerFields[.secWebSocketKey] == Self.key)
        #expect(request.headerFields[.secWebSocketVersion] == "13")
        #expect(request.headerFields[.secWebSocketProtocol] == "chat, superchat")
        #expect(request.headerFields[.secWebSocketExtensions] == "permessage-deflate; client_max_window_bits")
        #expect(request.headerFields[.origin] == "https://example.com")
    }

    @Test("the request passes the server's own validation")
    func requestValidatesOnServer() throws {
        var generator = SeededGenerator(seed: 1)
        let client = ClientHandshake(url: try WebSocketURL("ws://[::1]:9000/"), subprotocols: ["a"], using: &generator)
        let server = try UpgradeRequest(validating: client.request, httpVersion: .http1_1)
        #expect(server.host == "[::1]:9000")
        #expect(server.subprotocols == ["a"])
        let response = try server.makeResponse(subprotocol: "a")
        #expect(try client.validate(response, httpVersion: .http1_1).subprotocol == "a")
    }

    @Test("keys come from the injected generator")
    func injectedKey() throws {
        var a = SeededGenerator(seed: 9)
        var b = SeededGenerator(seed: 9)
        let url = try WebSocketURL("ws://h/")
        let first = ClientHandshake(url: url, using: &a)
        let second = ClientHandshake(url: url, using: &b)
        #expect(first.key == second.key)
        #expect(OpeningHandshake.isValidKey(first.key))
        #expect(ClientHandshake(url: url).key != ClientHandshake(url: url).key)
    }

    @Test("a correct response is accepted")
    func accepted() throws {
        let negotiated = try handshake().validate(
            response(["Upgrade": "WebSocket", "Connection": "keep-alive, upgrade"].map { ($0.key, $0.value) }))
        #expect(negotiated.subprotocol == nil)
        #expect(negotiated.extensions.isEmpty)
    }

    @Test(
        "invalid responses are refused with the rule they break",
        arguments: [
            (200, [("Upgrade", nil as String?)], [(String, String)](), ClientHandshakeError.unexpectedStatus),
            (403, [], [], .unexpectedStatus),
            (101, [("Upgrade", nil)], [], .missingUpgradeWebSocket),
            (101, [("Upgrade", "h2c")], [], .missingUpgradeWebSocket),
            (101, [("Upgrade", "websocket, h2c")], [], .missingUpgradeWebSocket),
            (101, [("Upgrade", "websocket/13")], [], .missingUpgradeWebSocket),
            (101, [], [("Upgrade", "websocket")], .missingUpgradeWebSocket),
            (101, [("Connection", nil)], [], .missingConnectionUpgrade),
            (101, [("Connection", "keep-alive")], [], .missingConnectionUpgrade),
            (101, [("Sec-WebSocket-Accept", nil)], [], .missingAccept),
            (101, [("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")], [], .acceptMismatch),
            (101, [("Sec-WebSocket-Accept", "s3pplmbitxaq9kygzzhzrbk+xoo=")], [], .acceptMismatch),
            (101, [], [("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")], .acceptMismatch),
            (101, [], [("Sec-WebSocket-Extensions", "x-foo")], .extensionNotOffered),
            (101, [], [("Sec-WebSocket-Extensions", "a;=")], .malformedExtensions),
            (101, [], [("Sec-WebSocket-Protocol", "chat")], .subprotocolNotOffered),
        ]
    )
    func refused(status: Int, overrides: [(String, String?)], extra: [(String, String)], expected: ClientHandshakeError)
        throws
    {
        let client = try handshake()
        #expect(throws: expected) { try client.validate(response(status: status, overrides, extra: extra)) }
    }

    @Test("RFC 6455 §4.1 item 2: an Upgrade value other than 'websocket' fails, even one that lists it")
    func upgradeMustBeExactlyWebSocket() throws {
        let client = try handshake()
        #expect(throws: ClientHandshakeError.missingUpgradeWebSocket) {
            try client.validate(response([("Upgrade", "websocket, h2c")]))
        }
        #expect(try client.validate(response([("Upgrade", " WEBSOCKET\t")])).subprotocol == nil)
    }

    @Test("a 101 in an HTTP/1.0 status line is refused; HTTP/1.1 and later minor versions are accepted")
    func http10SwitchingProtocolsRefused() throws {
        let client = try handshake()
        var parser = HTTPResponseHeadParser()
        let bytes = Array(
            ("HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(Self.accept)\r\n\r\n").utf8)
        guard case .complete(let head, _) = try parser.parse(bytes) else {
            Issue.record("the head did not complete")
            return
        }
        #expect(head.version == .http1_0)
        #expect(throws: ClientHandshakeError.httpVersionTooOld) { try client.validate(head) }
        #expect(throws: ClientHandshakeError.httpVersionTooOld) {
            try client.validate(head.response, httpVersion: .http1_0)
        }
        _ = try client.validate(head.response, httpVersion: HTTPProtocolVersion(major: 1, minor: 2))
    }

    @Test("subprotocol: chosen one must be offered, exactly one")
    func subprotocols() throws {
        let client = try handshake(subprotocols: ["chat", "superchat"])
        #expect(
            try client.validate(response(extra: [("Sec-WebSocket-Protocol", "superchat")])).subprotocol == "superchat")
        #expect(throws: ClientHandshakeError.subprotocolNotOffered) {
            try client.validate(response(extra: [("Sec-WebSocket-Protocol", "Chat")]))
        }
        #expect(throws: ClientHandshakeError.multipleSubprotocols) {
            try client.validate(response(extra: [("Sec-WebSocket-Protocol", "chat, superchat")]))
        }
    }

    @Test("extensions: offered ones are returned with the server's parameters")
    func extensions() throws {
        let client = try handshake(extensions: [WebSocketExtension(name: "permessage-deflate")])
        let negotiated = try client.validate(
            response(extra: [("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover")])
        )
        #expect(
            negotiated.extensions == [
                WebSocketExtension(name: "permessage-deflate", parameters: [.init(name: "server_no_context_takeover")])
            ])
        #expect(throws: ClientHandshakeError.extensionNotOffered) {
            try client.validate(response(extra: [("Sec-WebSocket-Extensions", "permessage-deflate, x-other")]))
        }
    }

    @Test("error descriptions say what was wrong")
    func descriptions() throws {
        let client = try handshake()
        do {
            _ = try client.validate(response(["Sec-WebSocket-Accept": "wrong"].map { ($0.key, $0.value) }))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("wrong"))
            #expect(error.description.contains(Self.accept))
        }
    }
}
