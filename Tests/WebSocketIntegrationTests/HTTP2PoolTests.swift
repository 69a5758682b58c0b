import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer

/// The opt-in ``HTTP2ConnectionPool``: several WebSockets to one origin on one HTTP/2 connection, counted on the
/// server side (``Server/http2Statistics``).
@Suite("HTTP/2 connection pool: our client and our server")
struct HTTP2PoolTests {
    private func echoServer(tls: TLSConfiguration? = nil, http2: Server.HTTP2Configuration) -> Server {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0, tls: tls)
        configuration.http2 = http2
        let route = WebSocketRoute(path: "/echo", handler: .delegate { _ in EchoDelegate() })
        return Server(configuration: configuration, routes: [route])
    }

    private func pooled(_ pool: HTTP2ConnectionPool) -> WebSocketClientConfiguration {
        var configuration = WebSocketClientConfiguration()
        configuration.http2 = .priorKnowledge
        configuration.http2Pool = pool
        return configuration
    }

    /// Sends `text` on each WebSocket and reads its echo.
    private func echo(
        _ text: String,
        on sockets: [WebSocket],
        _ iterators: inout [WebSocketInboundMessages.AsyncIterator]
    ) async throws -> [String?] {
        var echoed: [String?] = []
        for (index, socket) in sockets.enumerated() {
            try await socket.send(text: "\(text) \(index)")
            echoed.append(await iterators[index].next()?.text)
        }
        return echoed
    }

    @Test("five WebSockets share one TCP connection; closing one leaves the others; shutdown closes everything")
    func shareOneConnection() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true))
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                let pool = HTTP2ConnectionPool()
                let url = "ws://127.0.0.1:\(server.port)/echo"
                var sockets: [WebSocket] = []
                for _ in 0..<5 { sockets.append(try await WebSocket.connect(to: url, configuration: pooled(pool))) }
                var iterators = sockets.map { $0.messages.makeAsyncIterator() }
                #expect(try await echo("hello", on: sockets, &iterators) == (0..<5).map { "hello \($0)" })
                #expect(server.http2Statistics.connections == 1)
                #expect(server.http2Statistics.webSocketsOpened == 5)
                #expect(pool.statistics.connections == 1 && pool.statistics.streams == 5)

                // Closing one WebSocket ends its stream only.
                let status = await sockets[2].close()
                #expect(status.code == .normalClosure)
                #expect(await eventually { pool.statistics.streams == 4 })
                #expect(await eventually { server.http2Statistics.openWebSockets == 4 })
                sockets.remove(at: 2)
                iterators.remove(at: 2)
                #expect(try await echo("again", on: sockets, &iterators) == (0..<4).map { "again \($0)" })

                // A sixth reuses the connection's free slot.
                let sixth = try await WebSocket.connect(to: url, configuration: pooled(pool))
                #expect(server.http2Statistics.connections == 1)
                #expect(pool.statistics.streams == 5)

                await pool.shutdown()
                for socket in sockets + [sixth] {
                    #expect((await socket.closeStatus).code == .abnormalClosure)
                }
                #expect(pool.statistics.connections == 0)
                #expect(await eventually { server.http2Statistics.openWebSockets == 0 })
                await #expect(throws: WebSocketClientError.self) {
                    _ = try await WebSocket.connect(to: url, configuration: pooled(pool))
                }
                #expect(server.http2Statistics.connections == 1)
            }
        }
    }

    @Test("a full connection (server's SETTINGS_MAX_CONCURRENT_STREAMS) makes the pool open another")
    func maxConcurrentStreams() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true, maxConcurrentStreams: 2))
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                let pool = HTTP2ConnectionPool()
                let url = "ws://127.0.0.1:\(server.port)/echo"
                var sockets: [WebSocket] = []
                for _ in 0..<5 { sockets.append(try await WebSocket.connect(to: url, configuration: pooled(pool))) }
                var iterators = sockets.map { $0.messages.makeAsyncIterator() }
                #expect(try await echo("x", on: sockets, &iterators) == (0..<5).map { "x \($0)" })
                #expect(server.http2Statistics.connections == 3)
                #expect(pool.statistics.connections == 3)
                await pool.shutdown()
            }
        }
    }

    @Test("a stream refused by the server's WebSocket limit is retried on a new connection")
    func refusedStreamRetried() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true, maxWebSocketsPerConnection: 2))
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                let pool = HTTP2ConnectionPool()
                let url = "ws://127.0.0.1:\(server.port)/echo"
                var sockets: [WebSocket] = []
                for _ in 0..<4 { sockets.append(try await WebSocket.connect(to: url, configuration: pooled(pool))) }
                var iterators = sockets.map { $0.messages.makeAsyncIterator() }
                #expect(try await echo("y", on: sockets, &iterators) == (0..<4).map { "y \($0)" })
                #expect(server.http2Statistics.connections == 2)
                #expect(server.http2Statistics.webSocketsOpened == 4)
                await pool.shutdown()
            }
        }
    }

    @Test("a connection the server closed leaves the pool; the next WebSocket opens a new one")
    func closedConnectionDropped() async throws {
        var http2 = Server.HTTP2Configuration(cleartextPriorKnowledge: true)
        http2.idleTimeout = .milliseconds(500)
        let server = echoServer(http2: http2)
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                let pool = HTTP2ConnectionPool()
                let url = "ws://127.0.0.1:\(server.port)/echo"
                let first = try await WebSocket.connect(to: url, configuration: pooled(pool))
                _ = await first.close()
                // No stream left: the server's idle timeout sends GOAWAY and closes the connection.
                #expect(await eventually { pool.statistics.connections == 0 })
                let second = try await WebSocket.connect(to: url, configuration: pooled(pool))
                try await second.send(text: "fresh")
                var iterator = second.messages.makeAsyncIterator()
                #expect(await iterator.next()?.text == "fresh")
                // At least a second connection (a slow machine may see the server's idle timeout strike again
                // before a stream is open; the pool then retries on yet another).
                #expect(server.http2Statistics.connections >= 2)
                #expect(pool.statistics.connectionsOpened == server.http2Statistics.connections)
                await pool.shutdown()
            }
        }
    }

    @Test("a connection without WebSockets for the pool's idle timeout is closed by the pool")
    func idleTimeout() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true))
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                // 2 s: long enough that a loaded machine opens the second WebSocket within it.
                let pool = HTTP2ConnectionPool(configuration: .init(idleTimeout: .seconds(2)))
                let url = "ws://127.0.0.1:\(server.port)/echo"
                let first = try await WebSocket.connect(to: url, configuration: pooled(pool))
                _ = await first.close()
                // A WebSocket within the timeout reuses the connection and stops the timer.
                let second = try await WebSocket.connect(to: url, configuration: pooled(pool))
                try await Task.sleep(for: .milliseconds(2500))  // past the timeout: it must have been stopped
                #expect(pool.statistics.connections == 1)
                _ = await second.close()
                #expect(await eventually { pool.statistics.connections == 0 })
                #expect(server.http2Statistics.connections == 1)
                await pool.shutdown()
            }
        }
    }

    @Test("different TLS configurations never share a connection", .enabled(if: TestCertificate.isAvailable))
    func tlsKeyed() async throws {
        let certificate = try TestCertificate.make()
        let server = echoServer(tls: try certificate.serverTLS(), http2: .init())
        try await server.withRunning { server in
            try await withTimeout(.seconds(30)) {
                let pool = HTTP2ConnectionPool()
                let url = "wss://127.0.0.1:\(server.port)/echo"
                var first = try certificate.clientConfiguration()
                first.http2 = .preferred
                first.http2Pool = pool
                var second = first
                second.tls.minimumTLSVersion = .tlsv13
                let a = try await WebSocket.connect(to: url, configuration: first)
                let b = try await WebSocket.connect(to: url, configuration: first)
                let c = try await WebSocket.connect(to: url, configuration: second)
                // The server counts a WebSocket just after writing its 200: wait for the last one.
                #expect(await eventually { server.http2Statistics.webSocketsOpened == 3 })
                #expect(server.http2Statistics.connections == 2)
                #expect(pool.statistics.connections == 2)
                for socket in [a, b, c] { _ = await socket.close() }
                await pool.shutdown()
            }
        }
    }

    @Test("cancelled connects stop at once: the one opening the first connection and one waiting for it")
    func cancelledConnects() async throws {
        // Accepts TCP and never speaks HTTP/2: the pool's first connection waits for SETTINGS until its timeout.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let pool = HTTP2ConnectionPool()
        let configuration = {
            var configuration = pooled(pool)
            configuration.connectTimeout = .seconds(15)
            return configuration
        }()
        let url = "ws://127.0.0.1:\(silent.localAddress?.port ?? 0)/echo"
        let clock = ContinuousClock()
        /// Starts a connect, cancels it after `delay`; returns how long it took to return after the cancellation.
        @Sendable func cancelled(after delay: Duration) async -> Duration {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = try? await WebSocket.connect(to: url, configuration: configuration) }
                try? await Task.sleep(for: delay)
                let cancelledAt = clock.now
                group.cancelAll()
                await group.waitForAll()
                return clock.now - cancelledAt
            }
        }
        let (opener, waiter) = try await withTimeout(.seconds(30)) {
            async let opener = cancelled(after: .milliseconds(900))
            try await Task.sleep(for: .milliseconds(300))
            let waiter = await cancelled(after: .milliseconds(300))  // waits for the opener's connection
            return (await opener, waiter)
        }
        // Without cancellation both would wait for the 15 s connect timeout; the margin is for a loaded machine.
        #expect(waiter < .seconds(5))
        #expect(opener < .seconds(5))
        #expect(pool.statistics.connections == 0)
        await pool.shutdown()
        try await silent.close()
    }

    @Test("a connect cancelled while its stream waits for the server's answer stops at once; the connection stays")
    func cancelledStream() async throws {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.http2 = .init(cleartextPriorKnowledge: true)
        let slow = WebSocketRoute(
            path: "/slow",
            shouldUpgrade: { _, _ in
                try? await Task.sleep(for: .seconds(20))
                return .accept()
            },
            handler: .delegate { _ in EchoDelegate() }
        )
        let echo = WebSocketRoute(path: "/echo", handler: .delegate { _ in EchoDelegate() })
        let server = Server(configuration: configuration, routes: [slow, echo])
        try await server.withRunning { server in
            let pool = HTTP2ConnectionPool()
            let clientConfiguration = {
                var configuration = pooled(pool)
                configuration.connectTimeout = .seconds(15)
                return configuration
            }()
            let streamSeen = NIOLockedValueBox(false)
            let elapsed = try await withTimeout(.seconds(30)) {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        _ = try? await WebSocket.connect(
                            to: "ws://127.0.0.1:\(server.port)/slow", configuration: clientConfiguration)
                    }
                    // Cancelled once the server has the stream (its connection is open; the answer is pending).
                    let seen = await eventually(timeout: .seconds(10)) { server.http2Statistics.streams >= 1 }
                    streamSeen.withLockedValue { $0 = seen }
                    let clock = ContinuousClock()
                    let cancelledAt = clock.now
                    group.cancelAll()
                    await group.waitForAll()
                    return clock.now - cancelledAt
                }
            }
            // Without cancellation it would wait for the 15 s timeout; the margin is for a loaded machine.
            #expect(elapsed < .seconds(5))
            #expect(streamSeen.withLockedValue { $0 })
            #expect(await eventually { pool.statistics.streams == 0 })
            // The connection is still good for another WebSocket.
            let socket = try await WebSocket.connect(
                to: "ws://127.0.0.1:\(server.port)/echo", configuration: clientConfiguration)
            #expect(server.http2Statistics.connections == 1)
            _ = await socket.close()
            await pool.shutdown()
        }
    }

    @Test("shutdown ends a connect in flight at once with shutDown")
    func shutdownDuringConnect() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let pool = HTTP2ConnectionPool()
        let configuration = {
            var configuration = pooled(pool)
            configuration.connectTimeout = .seconds(15)
            return configuration
        }()
        let url = "ws://127.0.0.1:\(silent.localAddress?.port ?? 0)/echo"
        let (outcome, elapsed) = try await withTimeout(.seconds(30)) {
            async let connect: String = {
                do {
                    _ = try await WebSocket.connect(to: url, configuration: configuration)
                    return "connected"
                } catch let error as WebSocketClientError {
                    return (error.underlying as? HTTP2ConnectionPoolError) == .shutDown ? "shutDown" : "\(error)"
                }
            }()
            try await Task.sleep(for: .milliseconds(500))
            let clock = ContinuousClock()
            let start = clock.now
            await pool.shutdown()
            let outcome = try await connect
            return (outcome, clock.now - start)
        }
        #expect(outcome == "shutDown")
        // Without it the connect would wait for its 15 s timeout; the margin is for a loaded machine.
        #expect(elapsed < .seconds(5))
        try await silent.close()
    }
}
