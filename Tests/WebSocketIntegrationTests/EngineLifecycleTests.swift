import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOPosix
import Testing
import WebSocketNIOTestSupport
import WebSocketTestSupport
import WebSocketClient
import WebSocketServer

/// Engine 1.0 behaviour of the server and client: structured route tasks, send-only routes with a heartbeat,
/// throwing routes, cancellation of decisions, scoped and dropped clients, metrics, logging, send completion
/// and writability, saturating durations.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct EngineLifecycleTests {
    private func url(_ server: Server, _ path: String) -> String {
        "ws://127.0.0.1:\(server.port)\(path)"
    }

    private func heartbeat(interval: Duration, timeout: Duration) -> WebSocketConfiguration {
        var configuration = WebSocketConfiguration()
        configuration.connection.pingInterval = interval
        configuration.connection.pongTimeout = timeout
        return configuration
    }

    /// A route that only sends (a ticker) while a healthy client sends 50 messages and the server's heartbeat
    /// runs: with `discardInboundMessages()` reading never pauses; without it reading pauses after 16 unread
    /// messages, and that pause must not be judged as a dead peer. Both end with a clean 1000 both ways.
    @Test(arguments: [true, false])
    func sendOnlyRouteWithHeartbeat(discards: Bool) async throws {
        let serverStatus = NIOLockedValueBox<CloseStatus?>(nil)
        var configuration = Server.Configuration(
            port: 0,
            // A 3 s pong timeout: a loaded CI machine can delay an answer past 1 s (a flake seen in CI).
            webSocket: self.heartbeat(interval: .milliseconds(150), timeout: .seconds(3))
        )
        configuration.shutdownGracePeriod = .seconds(2)
        let route = WebSocketRoute(
            path: "/ticker",
            handler: .async { ws, _ in
                if discards { ws.discardInboundMessages() }
                for tick in 0..<50 {
                    try await ws.send(text: "tick \(tick)")
                    try await Task.sleep(for: .milliseconds(80))  // 4 s in all: longer than ping + pong timeout
                }
                let status = await ws.close()
                serverStatus.withLockedValue { $0 = status }
            }
        )
        let clientStatus = try await Server(configuration: configuration, routes: [route]).withRunning { server in
            let ws = try await WebSocket.connect(to: self.url(server, "/ticker"))
            for index in 0..<50 {
                try await ws.send(text: "client message \(index)")
            }
            var ticks = 0
            for await message in ws.messages where message.text.hasPrefix("tick") {
                ticks += 1
            }
            #expect(ticks == 50)
            return await ws.closeStatus
        }
        #expect(clientStatus.code == .normalClosure)
        #expect(serverStatus.withLockedValue { $0 }?.code == .normalClosure)
    }

    @Test func throwingRouteClosesWith1011() async throws {
        struct RouteFailure: Error {}
        let route = WebSocketRoute(path: "/fails", handler: .async { _, _ in throw RouteFailure() })
        let status = try await Server(configuration: .init(port: 0), routes: [route]).withRunning { server in
            let ws = try await WebSocket.connect(to: self.url(server, "/fails"))
            for await _ in ws.messages {}
            return await ws.closeStatus
        }
        #expect(status.code == .internalError)
    }

    /// Shutdown gives a route the grace period, closes its connection, then cancels it; `run()` (here
    /// `withRunning`) returns only after the route task has returned.
    @Test func shutdownCancelsRoutesAfterTheGracePeriod() async throws {
        let routeEnded = NIOLockedValueBox<(cancelled: Bool, ended: Bool)>((false, false))
        var configuration = Server.Configuration(port: 0)
        configuration.shutdownGracePeriod = .milliseconds(300)
        let route = WebSocketRoute(
            path: "/stubborn",
            handler: .async { ws, _ in
                ws.discardInboundMessages()
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                routeEnded.withLockedValue { $0 = (Task.isCancelled, true) }
            }
        )
        try await Server(configuration: configuration, routes: [route]).withRunning { server in
            let ws = try await WebSocket.connect(to: self.url(server, "/stubborn"))
            // Answer nothing on purpose: keep the connection open into the shutdown.
            _ = ws.subprotocol
        }
        #expect(routeEnded.withLockedValue { $0 } == (true, true))
    }

    /// `shouldUpgrade` runs as a server task that is cancelled when its client goes away.
    @Test func upgradeDecisionIsCancelledWhenTheClientLeaves() async throws {
        let sawCancellation = NIOLockedValueBox(false)
        let started = NIOLockedValueBox(false)
        let route = WebSocketRoute(
            path: "/slow",
            shouldUpgrade: { _, _ in
                started.withLockedValue { $0 = true }
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    sawCancellation.withLockedValue { $0 = true }
                }
                return .reject(status: .forbidden)
            },
            handler: .async { _, _ in }
        )
        try await Server(configuration: .init(port: 0), routes: [route]).withRunning { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send(upgradeRequest(path: "/slow"))
            #expect(await eventually { started.withLockedValue { $0 } })
            await client.close()
            await eventually(timeout: .seconds(10)) { sawCancellation.withLockedValue { $0 } }
        }
        #expect(sawCancellation.withLockedValue { $0 })
    }

    @Test func scopedClientClosesWith1000AndWith1011WhenTheBodyThrows() async throws {
        struct BodyFailure: Error {}
        let statuses = NIOLockedValueBox<[CloseCode]>([])
        let route = WebSocketRoute(
            path: "/record",
            handler: .async { ws, _ in
                for await _ in ws.messages {}
                let status = await ws.closeStatus
                statuses.withLockedValue { $0.append(status.code) }
            }
        )
        try await Server(configuration: .init(port: 0), routes: [route]).withRunning { server in
            try await WebSocket.withConnection(to: self.url(server, "/record")) { ws in
                try await ws.send(text: "hi")
            }
            await #expect(throws: BodyFailure.self) {
                try await WebSocket.withConnection(to: self.url(server, "/record")) { _ in throw BodyFailure() }
            }
            await eventually(timeout: .seconds(10)) { statuses.withLockedValue { $0.count } == 2 }
        }
        #expect(statuses.withLockedValue { $0 } == [.normalClosure, .internalError])
    }

    @Test func droppedClientSends1001() async throws {
        let status = NIOLockedValueBox<CloseStatus?>(nil)
        let route = WebSocketRoute(
            path: "/record",
            handler: .async { ws, _ in
                for await _ in ws.messages {}
                let closed = await ws.closeStatus
                status.withLockedValue { $0 = closed }
            }
        )
        try await Server(configuration: .init(port: 0), routes: [route]).withRunning { server in
            do {
                let ws = try await WebSocket.connect(to: self.url(server, "/record"))
                try await ws.send(text: "then forgotten")
            }  // released here, still open
            await eventually(timeout: .seconds(10)) { status.withLockedValue { $0 } != nil }
        }
        #expect(status.withLockedValue { $0 }?.code == .goingAway)
    }

    @Test func metricsCountUpgradesMessagesBytesAndCloseCodes() async throws {
        let metrics = TestMetrics()
        var configuration = Server.Configuration(port: 0)
        configuration.metricsFactory = metrics
        let routes = [
            WebSocketRoute(
                path: "/echo",
                handler: .async { ws, _ in
                    for await message in ws.messages { try await ws.send(message.kind, message.payload) }
                }
            ),
            WebSocketRoute(path: "/private", shouldUpgrade: { _, _ in .reject(status: .unauthorized) }, handler: .async { _, _ in }),
        ]
        try await Server(configuration: configuration, routes: routes).withRunning { server in
            try await WebSocket.withConnection(to: self.url(server, "/echo")) { ws in
                var messages = ws.messages.makeAsyncIterator()
                for text in ["a", "bb", "ccc"] {
                    try await ws.send(text: text)
                    #expect(await messages.next()?.text == text)
                }
            }
            await #expect(throws: WebSocketClientError.self) {
                try await WebSocket.withConnection(to: self.url(server, "/private")) { _ in }
            }
            await eventually(timeout: .seconds(10)) { metrics.counterTotal(label: "websocket_close_codes_total") == 1 }
        }
        #expect(metrics.counterTotal(label: "websocket_upgrades_total", dimensions: [("status", "101")]) == 1)
        #expect(metrics.counterTotal(label: "websocket_upgrades_total", dimensions: [("status", "401")]) == 1)
        #expect(metrics.counterTotal(label: "websocket_messages_total", dimensions: [("direction", "in")]) == 3)
        #expect(metrics.counterTotal(label: "websocket_messages_total", dimensions: [("direction", "out")]) == 3)
        #expect(metrics.counterTotal(label: "websocket_bytes_total", dimensions: [("direction", "in")]) == 6)
        #expect(metrics.counterTotal(label: "websocket_bytes_total", dimensions: [("direction", "out")]) == 6)
        #expect(
            metrics.counterTotal(
                label: "websocket_close_codes_total", dimensions: [("code", "1000"), ("origin", "remote")]) == 1
        )
        let open = try metrics.expectMeter("websocket_connections_open")
        #expect(open.values.last == 0)
    }

    @Test func failedConnectionIsLoggedAtInfoWithCodeAndPeer() async throws {
        let records = LogRecords()
        var configuration = Server.Configuration(port: 0)
        configuration.logger = Logger(label: "test") { _ in records }
        configuration.logger.logLevel = .info
        let route = WebSocketRoute(path: "/echo", handler: .delegate { _ in WebSocketClosureDelegate() })
        try await Server(configuration: configuration, routes: [route]).withRunning { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send(upgradeRequest(path: "/echo"))
            #expect(await client.waitForResponse()?.status == 101)
            try await client.send([0x81, 0x02, 0x68, 0x69])  // an unmasked frame from a client: 1002
            await eventually { records.messages.contains { $0.message == "WebSocket connection failed" } }
            await client.close()
        }
        let failure = try #require(records.messages.first { $0.message == "WebSocket connection failed" })
        #expect(failure.level == .info)
        #expect(failure.metadata["code"] == "1002")
        #expect(failure.metadata["peer"]?.description.contains("127.0.0.1") == true)
        #expect(failure.metadata["path"] == "/echo")
        #expect(records.messages.contains { $0.message == "listening" })
    }

    /// The delegate API: send promises complete when written; a burst above the high-water mark turns the
    /// channel unwritable (32 MiB against a 1 MiB high-water mark and a client that waits before reading) and the
    /// delegate hears it, then hears it writable again once the client read.
    @Test func sendPromisesAndWritabilitySignal() async throws {
        let changes = NIOLockedValueBox<[Bool]>([])
        let written = NIOLockedValueBox(0)
        let route = WebSocketRoute(
            path: "/burst",
            handler: .delegate { _ in
                WebSocketClosureDelegate(
                    onOpen: { context in
                        for _ in 0..<32 {
                            let promise = context.eventLoop.makePromise(of: Void.self)
                            promise.futureResult.whenSuccess { written.withLockedValue { $0 += 1 } }
                            try? context.send(.binary, ByteBuffer(repeating: 7, count: 1 << 20), promise: promise)
                        }
                        _ = context.sendHandle.close()
                    },
                    onWritabilityChanged: { _, isWritable in changes.withLockedValue { $0.append(isWritable) } }
                )
            }
        )
        try await Server(configuration: .init(port: 0), routes: [route]).withRunning { server in
            var client = WebSocketClientConfiguration()
            client.webSocket.inboundMessageBufferLimit = 2
            try await WebSocket.withConnection(to: self.url(server, "/burst"), configuration: client) { ws in
                try await Task.sleep(for: .milliseconds(300))  // the server's burst outgrows the socket buffers
                var received = 0
                for await message in ws.messages {
                    #expect(message.payload.readableBytes == 1 << 20)
                    received += 1
                }
                #expect(received == 32)
            }
        }
        #expect(written.withLockedValue { $0 } == 32)
        let seen = changes.withLockedValue { $0 }
        #expect(seen.first == false)
        #expect(seen.contains(true))
    }

    /// `Int.max` limits mean "no limit" and `.seconds(Int64.max)` timeouts mean "never": no trap anywhere.
    @Test func unboundedLimitsAndTimeouts() async throws {
        var webSocket = WebSocketConfiguration()
        webSocket.connection.maxMessageLength = .max
        webSocket.connection.maxFramePayloadLength = .max
        webSocket.connection.closeTimeout = .seconds(Int64.max)
        webSocket.connection.pongTimeout = .seconds(Int64.max)
        webSocket.connection.pingInterval = .seconds(Int64.max)
        var configuration = Server.Configuration(port: 0, webSocket: webSocket)
        configuration.handshakeTimeout = .seconds(Int64.max)
        configuration.perMessageDeflate = .init()
        let route = WebSocketRoute(
            path: "/echo",
            handler: .async { ws, _ in
                for await message in ws.messages { try await ws.send(message.kind, message.payload) }
            }
        )
        #expect(TimeAmount(saturating: .seconds(Int64.max)) == .nanoseconds(.max))
        #expect(TimeAmount(saturating: .seconds(-5)) == .nanoseconds(0))
        var clientConfiguration = WebSocketClientConfiguration(webSocket: webSocket)
        clientConfiguration.perMessageDeflate = .init()
        let client = clientConfiguration
        try await Server(configuration: configuration, routes: [route]).withRunning { server in
            try await WebSocket.withConnection(to: self.url(server, "/echo"), configuration: client) { ws in
                try await ws.send(text: String(repeating: "compressible ", count: 1000))
                for await message in ws.messages {
                    #expect(message.text.count == 13_000)
                    break
                }
            }
        }
    }

    /// The async API with `.streaming` delivery hands out pieces as they arrive: a 768 KiB message sent as three
    /// 256 KiB frames arrives as several pieces, first and last marked, never reassembled, bytes intact.
    @Test func asyncStreamingDelivery() async throws {
        var webSocket = WebSocketConfiguration()
        webSocket.connection.delivery = .streaming
        let pieces = NIOLockedValueBox<[(count: Int, isFirst: Bool, isFinal: Bool, intact: Bool)]>([])
        let route = WebSocketRoute(
            path: "/pieces",
            handler: .async { ws, _ in
                for await piece in ws.messages {
                    let intact = piece.payload.readableBytesView.allSatisfy { $0 == 0x5A }
                    pieces.withLockedValue {
                        $0.append((piece.payload.readableBytes, piece.isFirst, piece.isFinal, intact))
                    }
                    if piece.isFinal { try await ws.send(text: "done") }
                }
            }
        )
        try await Server(configuration: .init(port: 0, webSocket: webSocket), routes: [route]).withRunning {
            server in
            try await WebSocket.withConnection(to: self.url(server, "/pieces")) { ws in
                let frame = ByteBuffer(repeating: 0x5A, count: 256 << 10)
                try await ws.send(.binary, fragments: [frame, frame, frame])
                for await message in ws.messages {
                    #expect(message.text == "done")
                    break
                }
            }
        }
        let seen = pieces.withLockedValue { $0 }
        #expect(seen.count >= 3)
        #expect(seen.map(\.count).reduce(0, +) == 3 * (256 << 10))
        #expect(seen.first?.isFirst == true)
        #expect(seen.last?.isFinal == true)
        #expect(seen.dropLast().allSatisfy { !$0.isFinal })
        #expect(seen.allSatisfy { $0.intact })
    }

    /// A peer that stops reading while we send is not alive for the heartbeat: our read pause because the
    /// channel is unwritable is its doing, so after `pingInterval + pongTimeout` it is dropped (1006).
    @Test func peerThatStopsReadingIsDroppedByTheHeartbeat() async throws {
        let closed = NIOLockedValueBox<CloseStatus?>(nil)
        let route = WebSocketRoute(
            path: "/firehose",
            handler: .delegate { _ in
                WebSocketClosureDelegate(
                    onOpen: { context in
                        for _ in 0..<16 {
                            try? context.send(.binary, ByteBuffer(repeating: 1, count: 1 << 20))
                        }
                    },
                    onClosed: { _, status in closed.withLockedValue { $0 = status } }
                )
            }
        )
        let configuration = Server.Configuration(
            port: 0,
            webSocket: self.heartbeat(interval: .milliseconds(200), timeout: .milliseconds(500))
        )
        try await Server(configuration: configuration, routes: [route]).withRunning { server in
            let client = try await RawTestClient.connect(port: server.port, receiveBufferSize: 4096, autoRead: false)
            try await client.send(upgradeRequest(path: "/firehose"))
            await eventually(timeout: .seconds(15)) { closed.withLockedValue { $0 } != nil }
            await client.close()
        }
        #expect(closed.withLockedValue { $0 }?.code == .abnormalClosure)
    }

    /// When the peer never answers our close frame, `close()` returns after about `closeTimeout`, not twice that
    /// (the core's close timeout, then no second linger for a FIN).
    @Test func unansweredCloseEndsAfterOneCloseTimeout() async throws {
        let peer = try await ScriptedPeer.start { key, _ in ScriptedPeer.switchingProtocols(key: key) }
        var client = WebSocketClientConfiguration()
        client.webSocket.connection.closeTimeout = .seconds(2)
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(peer.port)/", configuration: client)
        let started = ContinuousClock.now
        let status = await ws.close()
        let elapsed = ContinuousClock.now - started
        await peer.stop()
        #expect(status.code == .abnormalClosure)
        #expect(elapsed >= .seconds(2) && elapsed < .milliseconds(3500), "took \(elapsed)")
    }

    @Test func lifecycleMisuseIsRefused() async throws {
        await #expect(throws: Server.LifecycleError.self) {
            try await Server(configuration: .init(port: 70_000), routes: []).run()
        }
        let server = Server(configuration: .init(port: 0), routes: [])
        try await server.withRunning { server in
            await #expect(throws: Server.LifecycleError.self) { try await server.run() }
        }
        #expect(server.localAddress == nil)
        // shutdown() before run(): run() returns at once without binding.
        let idle = Server(configuration: .init(port: 0), routes: [])
        await idle.shutdown()
        try await idle.run()
        #expect(idle.port == 0)
    }

    /// A handler that cannot be installed (closed channel) still completes its close promise: NIO would trap
    /// on the leaked promise in a debug build, and `closeStatus` would never return.
    @Test func failedInstallationCompletesTheClosePromise() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.localAddress?.port ?? 0).get()
        try await channel.close()
        let failed = try await channel.eventLoop.submit { () -> Bool in
            do {
                _ = try channel.pipeline.syncOperations.addAsyncWebSocket(role: .client)
                return false
            } catch {
                return true
            }
        }.get()
        #expect(failed)
        try await server.close()
    }
}

/// A swift-log handler that keeps every record, for assertions. A value (as swift-log expects): metadata set on
/// one logger copy stays there; the records are shared by all copies.
struct LogRecords: LogHandler {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let store = NIOLockedValueBox<[Record]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var messages: [Record] { self.store.withLockedValue { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = self.metadata
        merged.merge(event.metadata ?? [:]) { $1 }
        self.store.withLockedValue {
            $0.append(Record(level: event.level, message: event.message.description, metadata: merged))
        }
    }
}
