import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketCore
import WebSocketNIO
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// Our client against our server over 127.0.0.1: messages, fragmentation, control frames, both closing
/// directions, the heartbeat, early frames behind the handshake, graceful shutdown and backpressure.
@Suite("End to end: WebSocketClient against WebSocketServer", .timeLimit(.minutes(2)))
struct EndToEndTests {
    static let routes = ["/echo", "/async-echo"]
    static let sizes = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]

    @Test("binary messages round-trip at the length-encoding boundaries", arguments: routes, sizes)
    func binaryRoundTrip(route: String, size: Int) async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url(route))
            let payload = testPayload(size)
            try await ws.send(binary: payload)
            var iterator = ws.messages.makeAsyncIterator()
            let echo = try #require(await iterator.next())
            #expect(echo.kind == .binary)
            #expect(echo.payload.readableBytes == size)
            #expect(echo.payload == payload)
            let status = await ws.close()
            #expect(status.code == .normalClosure)
        }
    }

    // The default copies each read before unmasking; `unmasksInReceivedBuffer = true` (ws-echo) works in place.
    @Test("the in-place receive path (unmasksInReceivedBuffer = true) behaves the same", arguments: [0, 126, 1 << 20])
    func inPlaceReceivePath(size: Int) async throws {
        var inPlace = WebSocketConfiguration()
        inPlace.unmasksInReceivedBuffer = true
        let configuration = inPlace
        try await EchoServer.with(configuration: configuration) { server in
            var clientConfiguration = WebSocketClientConfiguration()
            clientConfiguration.webSocket = configuration
            let ws = try await WebSocket.connect(to: server.url(), configuration: clientConfiguration)
            var iterator = ws.messages.makeAsyncIterator()
            let payload = testPayload(size, seed: 3)
            try await ws.send(binary: payload)
            #expect(await iterator.next()?.payload == payload)
            try await ws.send(text: "täxt")
            #expect(await iterator.next()?.text == "täxt")
            #expect(await ws.close().code == .normalClosure)
        }
    }

    @Test("text messages round-trip, including multi-byte UTF-8", arguments: routes)
    func textRoundTrip(route: String) async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url(route))
            let texts = ["", "hello", "héllo wörld ✓ 🎉", String(repeating: "ünïcødé ", count: 20_000)]
            var iterator = ws.messages.makeAsyncIterator()
            for text in texts {
                try await ws.send(text: text)
                let echo = try #require(await iterator.next())
                #expect(echo.kind == .text)
                #expect(echo.text == text)
            }
            await ws.close()
        }
    }

    @Test("many messages in flight come back in order")
    func pipelinedMessagesKeepOrder() async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url())
            let count = 2000
            let sender = Task {
                for index in 0..<count {
                    try await ws.send(text: "message \(index)")
                }
            }
            var received = 0
            for await message in ws.messages {
                #expect(message.text == "message \(received)")
                received += 1
                if received == count { break }
            }
            try await sender.value
            #expect(received == count)
            await ws.close()
        }
    }

    @Test("a batch send arrives as separate messages, in order", arguments: routes)
    func batchSend(route: String) async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url(route))
            var iterator = ws.messages.makeAsyncIterator()
            let large = testPayload(200_000, seed: 3)
            let expected: [(kind: MessageKind, payload: ByteBuffer)] = [
                (.text, ByteBuffer(string: "first")),
                (.binary, large),
                (.binary, ByteBuffer()),
                (.text, ByteBuffer(string: "shared")),
                (.text, ByteBuffer(string: "last")),
            ]
            // A client frames (and masks) a shared message itself.
            let shared = WebSocketSharedMessage(kind: .text, payload: ByteBuffer(string: "shared"))
            try await ws.send(batch: [
                .payload(.text, ByteBuffer(string: "first")), .payload(.binary, large), .payload(.binary, ByteBuffer()),
                .shared(shared), .payload(.text, ByteBuffer(string: "last")),
            ])
            try await ws.send(batch: [])
            for message in expected {
                let received = try #require(await iterator.next())
                #expect(received.kind == message.kind)
                #expect(received.payload == message.payload)
            }
            await ws.close()
            // Closed: the batch is refused as a whole.
            await #expect(throws: WebSocketError.connectionClosed) {
                try await ws.send(batch: [.payload(.text, ByteBuffer(string: "late"))])
            }
        }
    }

    @Test("a fragmented send arrives as one message", arguments: routes)
    func fragmentedSend(route: String) async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url(route))
            var iterator = ws.messages.makeAsyncIterator()

            try await ws.send(
                .text,
                fragments: ["frag", "mented ", "", "téxt"].map { ByteBuffer(string: $0) }
            )
            let text = try #require(await iterator.next())
            #expect(text.kind == .text)
            #expect(text.text == "fragmented téxt")

            let parts = (0..<5).map { testPayload(70_000, seed: UInt64($0)) }
            try await ws.send(.binary, fragments: parts)
            let binary = try #require(await iterator.next())
            var joined = ByteBuffer()
            for var part in parts { joined.writeBuffer(&part) }
            #expect(binary.kind == .binary)
            #expect(binary.payload == joined)

            // Frame-level API: a continuation without a start is refused by the core.
            await #expect(throws: WebSocketError.sendFailed(.noMessageInProgress)) {
                try await ws.sendFrame(.continuation, ByteBuffer(string: "x"), fin: true)
            }
            await ws.close()
        }
    }

    @Test("ping is answered with a pong carrying the same payload")
    func pingPong() async throws {
        try await EchoServer.with { server in
            let pongs = NIOLockedValueBox<[[UInt8]]>([])
            let connection = try await WebSocketDelegateConnection.connect(to: server.url()) { _ in
                WebSocketClosureDelegate(onPong: { _, payload in pongs.withLockedValue { $0.append(Array(payload)) }
                })
            }
            try await connection.withContext { context in
                try context.ping(ByteBuffer(string: "abc"))
                try context.ping(ByteBuffer())
            }
            let seen = try await withTimeout(.seconds(5)) {
                while pongs.withLockedValue({ $0.count }) < 2 {
                    try await Task.sleep(for: .milliseconds(5))
                }
                return pongs.withLockedValue { $0 }
            }
            #expect(seen == [Array("abc".utf8), []])

            // The async API: a ping goes out, a control payload above 125 bytes is refused (RFC 6455 §5.5).
            let ws = try await WebSocket.connect(to: server.url())
            try await ws.ping(ByteBuffer(string: "are you there?"))
            await #expect(throws: WebSocketError.sendFailed(.controlPayloadTooLong)) {
                try await ws.ping(ByteBuffer(repeating: 0, count: 126))
            }
            try await ws.send(text: "still open")
            var iterator = ws.messages.makeAsyncIterator()
            #expect(await iterator.next()?.text == "still open")
            await ws.close()
            try await connection.withContext { context in
                try context.close(code: .normalClosure, reason: "done")
            }
            #expect(try await connection.closed.get().code == .normalClosure)
        }
    }

    @Test("client-initiated close: both sides see the code and reason")
    func clientCloses() async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url("/async-echo"))
            let status = await ws.close(code: CloseCode(4000), reason: "client done")
            // The server echoes the code (RFC 6455 §5.5.1).
            #expect(status.code == CloseCode(4000))
            let serverSide = await server.waitForServerCloses(1)
            #expect(serverSide.first == CloseStatus(code: CloseCode(4000), reason: "client done"))
            // After the close, sends fail.
            await #expect(throws: WebSocketError.connectionClosed) {
                try await ws.send(text: "too late")
            }
        }
    }

    @Test("server-initiated close: the client's messages end and it sees the code and reason")
    func serverCloses() async throws {
        try await EchoServer.with { server in
            let ws = try await WebSocket.connect(to: server.url("/close-me"))
            for await _ in ws.messages {}
            let status = await ws.closeStatus
            #expect(status == CloseStatus(code: CloseCode(4001), reason: "server says bye"))
            let serverSide = await server.waitForServerCloses(1)
            #expect(serverSide.first?.code == CloseCode(4001))
        }
    }

    @Test("graceful shutdown sends 1001 to every open connection")
    func gracefulShutdown() async throws {
        try await EchoServer.with { server in
            let first = try await WebSocket.connect(to: server.url())
            let second = try await WebSocket.connect(to: server.url("/async-echo"))
            // The server registers a connection after it wrote the 101 the client has seen: wait for it.
            #expect(await eventually { server.server.webSocketCount == 2 }, "count \(server.server.webSocketCount)")
            await server.server.shutdown()
            #expect(server.server.webSocketCount == 0)
            #expect(await first.closeStatus.code == .goingAway)
            #expect(await second.closeStatus.code == .goingAway)
        }
    }

    @Test("the heartbeat reports a peer that completed the handshake and went silent as 1006")
    func heartbeatDetectsSilentPeer() async throws {
        let peer = try await ScriptedPeer.start { key, _ in ScriptedPeer.switchingProtocols(key: key) }
        var configuration = WebSocketClientConfiguration()
        configuration.webSocket.connection.pingInterval = .milliseconds(200)
        configuration.webSocket.connection.pongTimeout = .milliseconds(300)
        let ws = try await WebSocket.connect(
            to: "ws://127.0.0.1:\(peer.port)/",
            configuration: configuration
        )
        let clock = ContinuousClock()
        let start = clock.now
        let status = try await withTimeout(.seconds(30)) { await ws.closeStatus }
        let elapsed = clock.now - start
        #expect(status.code == .abnormalClosure)
        // A ping after 200 ms of silence, then 300 ms without an answer: about half a second.
        #expect(elapsed >= .milliseconds(400), "given up after \(elapsed), before the pong timeout ran out")
        #expect(elapsed < .seconds(5), "given up after \(elapsed): not by the heartbeat")
        // What the silent peer received: the heartbeat ping, then our close 1011 (masked, as from a client).
        await eventually { peer.framesReceived.count >= 2 }
        let frames = peer.framesReceived
        #expect(frames.map(\.opcode) == [0x9, 0x8])
        #expect(frames.allSatisfy { $0.isMasked })
        #expect(frames.last?.payload.prefix(2) == [0x03, 0xF3], "close code 1011")
        await peer.stop()
    }

    @Test("a connection that ends without a close frame reports 1006")
    func abruptEOF() async throws {
        let peer = try await ScriptedPeer.start(closeAfterResponse: true) { key, _ in
            ScriptedPeer.switchingProtocols(key: key) + RawFrame.bytes(opcode: 0x1, Array("bye".utf8))
        }
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(peer.port)/")
        var iterator = ws.messages.makeAsyncIterator()
        #expect(await iterator.next()?.text == "bye")
        #expect(await iterator.next() == nil)
        let status = try await withTimeout(.seconds(5)) { await ws.closeStatus }
        #expect(status.code == .abnormalClosure)
        await peer.stop()
    }

    @Test("frames sent in the same segment as the 101 are delivered first, not lost")
    func framesBehindTheHandshake() async throws {
        let peer = try await ScriptedPeer.start { key, _ in
            ScriptedPeer.switchingProtocols(key: key)
                + RawFrame.bytes(opcode: 0x1, Array("early".utf8))
                + RawFrame.bytes(opcode: 0x2, [1, 2, 3], fin: false)
                + RawFrame.bytes(opcode: 0x0, [4, 5], fin: true)
        }
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(peer.port)/")
        var iterator = ws.messages.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(first.kind == .text && first.text == "early")
        let second = try #require(await iterator.next())
        #expect(second.kind == .binary && Array(second.payload.readableBytesView) == [1, 2, 3, 4, 5])
        try await ws.channel.close()
        await peer.stop()
    }

    @Test("a protocol violation by the server fails the connection with 1002")
    func protocolViolation() async throws {
        // RFC 6455 §5.1: a client must fail the connection when a server frame is masked.
        let peer = try await ScriptedPeer.start { key, _ in
            ScriptedPeer.switchingProtocols(key: key)
                + RawFrame.bytes(opcode: 0x1, Array("masked".utf8), maskKey: [1, 2, 3, 4])
        }
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(peer.port)/")
        for await _ in ws.messages {}
        let status = try await withTimeout(.seconds(5)) { await ws.closeStatus }
        #expect(status.code == .protocolError)
        // Our close frame (masked, 1002) reached the peer (the peer's reader may see it a little later).
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        var sent = peer.receivedAfterHead
        while sent.isEmpty, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            sent = peer.receivedAfterHead
        }
        #expect(sent.first == 0x88)
        await peer.stop()
    }

    @Test("a slow consumer stops the server's sends (reading pauses instead of buffering), then gets every message in order")
    func slowConsumer() async throws {
        var slowConfiguration = WebSocketClientConfiguration()
        slowConfiguration.webSocket.inboundMessageBufferLimit = 4
        let configuration = slowConfiguration
        let count = 600  // 39 MB: far more than the socket buffers and the server's outbound high-water mark hold
        try await EchoServer.with(burstCount: count) { server in
            let ws = try await WebSocket.connect(to: server.url("/burst"), configuration: configuration)
            // Consume nothing: once 4 messages wait, the client stops reading, the socket buffers fill and the
            // server's sends stop completing. Wait until its count of completed sends stands still.
            var sent = -1
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while clock.now < deadline {
                try await Task.sleep(for: .milliseconds(300))
                let now = server.burstSent.withLockedValue { $0 }
                if now == sent, now > 0 { break }  // standing still after it started (a loaded machine starts late)
                sent = now
            }
            #expect(sent > 0, "the server sent nothing")
            #expect(sent < count, "all \(count) messages were sent to a consumer that read none: reading never paused")
            // Reading resumes as the consumer drains: every message arrives, in order.
            var expected: UInt32 = 0
            for await var message in ws.messages {
                #expect(message.payload.readableBytes == 65536)
                #expect(message.payload.readInteger(as: UInt32.self) == expected)
                expected += 1
                if expected % 100 == 0 {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(expected == count)
            #expect(server.burstSent.withLockedValue { $0 } == count)
            #expect(await ws.closeStatus.code == .normalClosure)
        }
    }

    @Test("messages above the configured limit fail the connection with 1009")
    func messageTooBig() async throws {
        var serverConfiguration = WebSocketConfiguration()
        serverConfiguration.connection.maxMessageLength = 1000
        try await EchoServer.with(configuration: serverConfiguration) { server in
            let ws = try await WebSocket.connect(to: server.url("/async-echo"))
            try await ws.send(binary: testPayload(1001))
            for await _ in ws.messages {}
            #expect(await ws.closeStatus.code == .messageTooBig)
        }
    }
}
