import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO
import WebSocketServer
import WebSocketNIOTestSupport
import WebSocketTestSupport

/// Starts a server with `/ws` (echo, accepts everything, picks the last offered subprotocol), `/auth` (requires
/// `Authorization: Bearer good` or `?access_token=good`, and rejects Origin `https://evil.example` with 403).
/// The test server configuration (127.0.0.1, port 0, 3 s handshake timeout) with `modify` applied.
func configured(_ modify: (inout Server.Configuration) -> Void) -> Server.Configuration {
    var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
    configuration.shutdownGracePeriod = .milliseconds(500)
    configuration.handshakeTimeout = .seconds(3)
    modify(&configuration)
    return configuration
}

func withTestServer(
    configuration: Server.Configuration = configured { _ in },
    extraRoutes: [WebSocketRoute] = [],
    _ body: @Sendable (Server) async throws -> Void
) async throws {
    let echo = WebSocketRoute(
        path: "/ws",
        shouldUpgrade: { request, _ in .accept(subprotocol: request.subprotocols.last) },
        handler: .delegate { _ in EchoDelegate() }
    )
    let auth = WebSocketRoute(
        path: "/auth",
        shouldUpgrade: { request, _ in
            if request.origin == "https://evil.example" {
                return .reject(status: .forbidden, body: "origin not allowed")
            }
            let bearer = request.headerFields[.authorization] == "Bearer good"
            let token = request.queryValue("access_token") == "good"
            guard bearer || token else {
                var fields = HTTPFields()
                fields[.wwwAuthenticate] = "Bearer"
                return .reject(status: .unauthorized, body: "missing or bad token", headerFields: fields)
            }
            return .accept()
        },
        handler: .delegate { _ in EchoDelegate() }
    )
    try await Server(configuration: configuration, routes: [echo, auth] + extraRoutes).withRunning(body)
}

/// Sends `request` and returns the parsed response once the server closed the connection (or the head came).
func exchange(_ server: Server, _ request: String, untilClose: Bool = true) async throws -> RawResponse? {
    let client = try await RawTestClient.connect(port: server.port)
    defer { Task { await client.close() } }
    try await client.send(request)
    let bytes = await client.wait { untilClose ? false : RawResponse.hasHead($0) }
    return RawResponse(bytes)
}

@Suite("Server handshake over real sockets")
struct ServerHandshakeTests {
    @Test(
        "every handshake rejection is answered with its exact status, then the connection closes",
        arguments: [
            (upgradeRequest(method: "POST"), 405),
            (upgradeRequest(method: "PUT"), 405),
            (upgradeRequest(version: "HTTP/1.0"), 400),
            (upgradeRequest(dropping: ["Host"]), 400),
            (upgradeRequest(dropping: ["Sec-WebSocket-Key"]), 400),
            (upgradeRequest(replacing: ["Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25j"]), 400),
            (upgradeRequest(replacing: ["Sec-WebSocket-Key": "not base64!"]), 400),
            (upgradeRequest(extra: ["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]), 400),
            (upgradeRequest(dropping: ["Upgrade"]), 400),
            (upgradeRequest(replacing: ["Upgrade": "h2c"]), 400),
            (upgradeRequest(dropping: ["Connection"]), 400),
            (upgradeRequest(replacing: ["Connection": "keep-alive"]), 400),
            (upgradeRequest(dropping: ["Sec-WebSocket-Version"]), 426),
            (upgradeRequest(replacing: ["Sec-WebSocket-Version": "8"]), 426),
            (upgradeRequest(extra: ["Sec-WebSocket-Protocol: a b"]), 400),
            (upgradeRequest(extra: ["Sec-WebSocket-Extensions: x;;"]), 400),
            (upgradeRequest(path: "/nowhere"), 404),
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
            ("THIS IS NOT HTTP\r\n\r\n", 400),
        ]
    )
    func rejection(request: String, status: Int) async throws {
        try await withTestServer { server in
            let response = try #require(try await exchange(server, request))
            #expect(response.status == status)
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(response.header("Sec-WebSocket-Accept") == nil)
        }
    }

    @Test("426 carries Sec-WebSocket-Version: 13; 405 carries Allow: GET; bodies say why")
    func rejectionHeaders() async throws {
        try await withTestServer { server in
            let tooOld = try #require(
                try await exchange(server, upgradeRequest(replacing: ["Sec-WebSocket-Version": "8"]))
            )
            #expect(tooOld.status == 426)
            #expect(tooOld.header("Sec-WebSocket-Version") == "13")
            #expect(tooOld.body.contains("Sec-WebSocket-Version"))
            let post = try #require(try await exchange(server, upgradeRequest(method: "POST")))
            #expect(post.header("Allow") == "GET")
            #expect(post.body.contains("GET"))
        }
    }

    @Test(
        "a valid upgrade gets 101 with the RFC accept value, including Connection lists over several lines",
        arguments: [
            upgradeRequest(),
            upgradeRequest(replacing: ["Connection": "keep-alive, Upgrade"]),
            upgradeRequest(replacing: ["Connection": "keep-alive"], extra: ["Connection: upgrade"]),
            upgradeRequest(replacing: ["Upgrade": "WebSocket", "Connection": "UPGRADE"]),
        ]
    )
    func accepted(request: String) async throws {
        try await withTestServer { server in
            let response = try #require(try await exchange(server, request, untilClose: false))
            #expect(response.status == 101)
            #expect(response.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            #expect(response.header("Upgrade")?.lowercased() == "websocket")
        }
    }

    @Test("the hook chooses a subprotocol the client offered over several header lines")
    func subprotocol() async throws {
        try await withTestServer { server in
            let request = upgradeRequest(extra: [
                "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: v3",
            ])
            let response = try #require(try await exchange(server, request, untilClose: false))
            #expect(response.status == 101)
            #expect(response.header("Sec-WebSocket-Protocol") == "v3")
        }
    }

    @Test(
        "the application hook authenticates by header or access_token and checks Origin",
        arguments: [
            (upgradeRequest(path: "/auth"), 401),
            (upgradeRequest(path: "/auth", extra: ["Authorization: Bearer bad"]), 401),
            (upgradeRequest(path: "/auth?access_token=bad"), 401),
            (
                upgradeRequest(path: "/auth", extra: ["Authorization: Bearer good", "Origin: https://evil.example"]),
                403
            ),
            (upgradeRequest(path: "/auth", extra: ["Authorization: Bearer good"]), 101),
            (upgradeRequest(path: "/auth?x=1&access_token=good"), 101),
        ]
    )
    func authentication(request: String, status: Int) async throws {
        try await withTestServer { server in
            let response = try #require(try await exchange(server, request, untilClose: status == 101 ? false : true))
            #expect(response.status == status)
            if status == 401 {
                #expect(response.header("WWW-Authenticate") == "Bearer")
                #expect(response.body == "missing or bad token")
            }
        }
    }

    @Test("a rejection followed by lots of unread data still reaches the client (no RST before the answer)")
    func rejectionSurvivesTrailingData() async throws {
        try await withTestServer { server in
            let client = try await RawTestClient.connect(port: server.port)
            let junk = [UInt8](repeating: 0x81, count: 512 * 1024)
            try await client.send(Array(upgradeRequest(method: "POST").utf8) + junk)
            let response = RawResponse(await client.wait(timeout: .seconds(5)))
            #expect(response?.status == 405)
            await client.close()
        }
    }

    @Test("other paths go to the application's HTTP handler, with headers and body; HEAD gets no body")
    func plainHTTP() async throws {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.handshakeTimeout = .seconds(3)
        configuration.shutdownGracePeriod = .milliseconds(100)
        let server = Server(
            configuration: configuration,
            routes: [],
            httpHandler: { request, _ in
                guard request.path == "/health" else { return .notFound }
                var fields = HTTPFields()
                fields[.cacheControl] = "no-store"
                return PlainHTTPResponse(status: .ok, text: "ok \(request.method.rawValue)", headerFields: fields)
            }
        )
        try await server.withRunning { server in
            let get = try #require(try await exchange(server, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(get.status == 200)
            #expect(get.body == "ok GET")
            #expect(get.header("Cache-Control") == "no-store")
            #expect(get.header("Content-Length") == "6")
            let head = try #require(try await exchange(server, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(head.status == 200)
            #expect(head.rest.isEmpty)
            let missing = try #require(try await exchange(server, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(missing.status == 404)
            // An upgrade request on a path without a route is plain HTTP too.
            #expect(try await exchange(server, upgradeRequest(path: "/ws"))?.status == 404)
        }
    }

    @Test("a request head larger than the limit is answered 431")
    func headTooLarge() async throws {
        try await withTestServer(configuration: configured { $0.maxRequestHeadLength = 1024 }) { server in
            let big = upgradeRequest(extra: ["X-Padding: " + String(repeating: "a", count: 4000)])
            let response = try #require(try await exchange(server, big))
            #expect(response.status == 431)
            let longURL = upgradeRequest(path: "/ws?" + String(repeating: "b", count: 4000))
            #expect(try await exchange(server, longURL)?.status == 431)
            // Just under the limit still works.
            let fits = upgradeRequest(extra: ["X-Padding: " + String(repeating: "a", count: 600)])
            #expect(try await exchange(server, fits, untilClose: false)?.status == 101)
        }
    }

    @Test("a head sent in many small pieces that grows past the limit is answered 431")
    func headTooLargeSlowly() async throws {
        try await withTestServer(configuration: configured { $0.maxRequestHeadLength = 512 }) { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send("GET /ws HTTP/1.1\r\nHost: x\r\n")
            for _ in 0..<40 {
                // Stop writing once the answer is there: writing on after the server closed can reset the
                // connection and discard the answer before it is read.
                if client.isClosed || !client.received.isEmpty { break }
                try? await client.send("X-Some-Header: 0123456789012345678901234567890123456789\r\n")
                try? await Task.sleep(for: .milliseconds(5))
            }
            let response = RawResponse(await client.wait(timeout: .seconds(15)) { RawResponse.hasHead($0) })
            #expect(response?.status == 431)
            await client.close()
        }
    }

    @Test("a client that never finishes its request is dropped after the handshake timeout")
    func handshakeTimeout() async throws {
        try await withTestServer(configuration: configured { $0.handshakeTimeout = .seconds(1) }) { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send("GET /ws HTTP/1.1\r\nHost: x\r\n")
            let start = ContinuousClock.now
            let bytes = await client.wait(timeout: .seconds(15))
            #expect(client.isClosed)
            #expect(bytes.isEmpty)
            #expect(ContinuousClock.now - start < .seconds(9), "the 1 s handshake timeout, not the 10 s default")
            await client.close()
        }
    }

    @Test("the handshake timeout does not close an upgraded connection")
    func timeoutAfterUpgrade() async throws {
        try await withTestServer(configuration: configured { $0.handshakeTimeout = .seconds(1) }) { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send(upgradeRequest())
            await client.wait { RawResponse.hasHead($0) }
            try await Task.sleep(for: .milliseconds(2500))
            #expect(!client.isClosed)
            try await client.send(maskedFrame(opcode: 0x1, Array("still here".utf8)))
            let bytes = await client.wait { RawResponse($0).flatMap { RawFrame.parse($0.rest) } != nil }
            let frame = try #require(RawResponse(bytes).flatMap { RawFrame.parse($0.rest) })
            #expect(frame.payload == Array("still here".utf8))
            await client.close()
        }
    }
}

@Suite("Early first frame and shutdown over real sockets")
struct ServerUpgradeTests {
    @Test("a frame sent in the same write as the request is echoed by the WebSocket handler")
    func earlyFrameEchoed() async throws {
        try await withTestServer { server in
            let client = try await RawTestClient.connect(port: server.port)
            let payload = Array("early bird".utf8)
            try await client.send(Array(upgradeRequest().utf8) + maskedFrame(opcode: 0x1, payload))
            let bytes = await client.wait { RawResponse($0).flatMap { RawFrame.parse($0.rest) } != nil }
            let response = try #require(RawResponse(bytes))
            #expect(response.status == 101)
            let frame = try #require(RawFrame.parse(response.rest))
            #expect(frame.first == 0x81)
            #expect(frame.payload == payload)
            await client.close()
        }
    }

    @Test("two early frames and a partial third are all delivered, the rest completes later")
    func earlyFramesSplit() async throws {
        try await withTestServer { server in
            let client = try await RawTestClient.connect(port: server.port)
            let third = maskedFrame(opcode: 0x2, [1, 2, 3, 4, 5])
            let early =
                Array(upgradeRequest().utf8) + maskedFrame(opcode: 0x1, Array("one".utf8))
                + maskedFrame(opcode: 0x1, Array("two".utf8)) + third.prefix(4)
            try await client.send(early)
            try await Task.sleep(for: .milliseconds(50))
            try await client.send(Array(third.dropFirst(4)))
            let expected: [UInt8] =
                [0x81, 3] + Array("one".utf8) + [0x81, 3] + Array("two".utf8) + [0x82, 5, 1, 2, 3, 4, 5]
            let bytes = await client.wait { RawResponse($0)?.rest.count ?? 0 >= expected.count }
            #expect(RawResponse(bytes)?.rest == expected)
            await client.close()
        }
    }

    @Test("WebSocket limits and heartbeat from the server configuration reach the connection")
    func configurationPassThrough() async throws {
        try await withTestServer(
            configuration: configured {
                $0.webSocket.connection.maxMessageLength = 100
                $0.webSocket.connection.maxFramePayloadLength = 100
                $0.webSocket.connection.pingInterval = .milliseconds(100)
                $0.webSocket.connection.pongTimeout = .seconds(5)
            }
        ) { server in
            // Heartbeat: an idle connection receives a ping.
            let idle = try await RawTestClient.connect(port: server.port)
            try await idle.send(upgradeRequest())
            let pinged = await idle.wait(timeout: .seconds(3)) { bytes in
                RawResponse(bytes).flatMap { RawFrame.parse($0.rest) }?.first == 0x89
            }
            #expect(RawResponse(pinged).flatMap { RawFrame.parse($0.rest) }?.first == 0x89)
            await idle.close()

            // Size limit: a 200-byte message is refused with 1009.
            let big = try await RawTestClient.connect(port: server.port)
            try await big.send(
                Array(upgradeRequest().utf8) + maskedFrame(opcode: 0x2, [UInt8](repeating: 7, count: 200)))
            let refused = await big.wait(timeout: .seconds(3)) { bytes in
                RawResponse(bytes).flatMap { RawFrame.parse($0.rest) }?.first == 0x88
            }
            let close = try #require(RawResponse(refused).flatMap { RawFrame.parse($0.rest) })
            #expect(close.first == 0x88)
            #expect(close.payload.prefix(2) == [0x03, 0xF1])  // 1009 message too big
            await big.close()
        }
    }

    @Test("the channel seam receives exactly the bytes sent behind the head")
    func leftoverBytesThroughSeam() async throws {
        let seen = NIOLockedValueBox<[UInt8]?>(nil)
        let raw = WebSocketRoute(
            path: "/raw",
            handler: .channel { _, _, leftover in
                seen.withLockedValue { $0 = leftover.map { Array($0.readableBytesView) } ?? [] }
            }
        )
        try await withTestServer(extraRoutes: [raw]) { server in
            let client = try await RawTestClient.connect(port: server.port)
            let tail: [UInt8] = [0x81, 0x85, 1, 2, 3, 4, 9, 9, 9, 9, 9, 0xFF]
            try await client.send(Array(upgradeRequest(path: "/raw").utf8) + tail)
            await client.wait { RawResponse.hasHead($0) }
            for _ in 0..<100 where seen.withLockedValue({ $0 }) == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(seen.withLockedValue { $0 } == tail)
            await client.close()
        }
    }

    @Test("the async API echoes, and graceful shutdown sends 1001 to every open connection")
    func shutdownSendsGoingAway() async throws {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.shutdownGracePeriod = .seconds(2)
        let route = WebSocketRoute(
            path: "/async",
            handler: .async { webSocket, _ in
                for await message in webSocket.messages {
                    try? await webSocket.send(message.kind, message.payload)
                }
            }
        )
        let server = Server(configuration: configuration, routes: [route])
        try await server.withRunning { server in
            var clients: [RawTestClient] = []
            for index in 0..<3 {
                let client = try await RawTestClient.connect(port: server.port)
                try await client.send(
                    Array(upgradeRequest(path: "/async").utf8) + maskedFrame(opcode: 0x1, [UInt8(48 + index)]))
                let bytes = await client.wait { RawResponse($0).flatMap { RawFrame.parse($0.rest) } != nil }
                #expect(RawResponse(bytes).flatMap { RawFrame.parse($0.rest) }?.payload == [UInt8(48 + index)])
                clients.append(client)
            }
            #expect(await eventually { server.webSocketCount == 3 }, "count \(server.webSocketCount)")

            let port = server.port
            let shutdown = Task { await server.shutdown() }
            for client in clients {
                let bytes = await client.wait { bytes in
                    guard let rest = RawResponse(bytes)?.rest, rest.count > 3 else { return false }
                    return RawFrame.parse(Array(rest.dropFirst(3)))?.first == 0x88
                }
                let rest = try #require(RawResponse(bytes)?.rest)
                let close = try #require(RawFrame.parse(Array(rest.dropFirst(3))))
                #expect(close.first == 0x88)
                #expect(close.payload.prefix(2) == [0x03, 0xE9])  // 1001 going away
                // Answer the close handshake as a client would.
                try? await client.send(maskedFrame(opcode: 0x8, [0x03, 0xE9]))
            }
            let start = ContinuousClock.now
            await shutdown.value
            #expect(ContinuousClock.now - start < .seconds(2))
            for client in clients {
                await client.wait()
                #expect(client.isClosed)
            }
            // The listening socket is gone.
            await #expect(throws: (any Error).self) { _ = try await RawTestClient.connect(port: port) }
        }
    }

    @Test("shutdown closes connections that do not answer the close frame within the grace period")
    func shutdownBounded() async throws {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.webSocket.connection.closeTimeout = .seconds(30)
        configuration.shutdownGracePeriod = .milliseconds(300)
        let route = WebSocketRoute(path: "/ws", handler: .delegate { _ in EchoDelegate() })
        let server = Server(configuration: configuration, routes: [route])
        try await server.withRunning { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send(upgradeRequest())
            await client.wait { RawResponse.hasHead($0) }
            let start = ContinuousClock.now
            await server.shutdown()
            #expect(
                ContinuousClock.now - start < .seconds(20), "bounded by the grace period, not by the 30 s close timeout")
            await client.wait(timeout: .seconds(2))
            #expect(client.isClosed)
        }
    }
}
