import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import WebSocketClient
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO
import WebSocketServer
import WebSocketNIOTestSupport

// The fixture of the end-to-end and client tests: our server with echo routes.

/// What an end-to-end test needs from a running `Server`.
struct EchoServer: Sendable {
    let server: Server
    /// Close statuses seen by the server's async routes, in order.
    let serverCloses: NIOLockedValueBox<[CloseStatus]>
    /// How many `/burst` messages the server has finished sending (written to the socket).
    let burstSent: NIOLockedValueBox<Int>

    var port: Int { self.server.port }

    func url(_ path: String = "/echo") -> String {
        "ws://127.0.0.1:\(self.port)\(path)"
    }

    /// Runs `body` with a server on 127.0.0.1 (ephemeral port), then shuts it down gracefully. Routes:
    /// - `/echo`: delegate-API echo (the fast path, as ws-echo);
    /// - `/async-echo`: async-API echo, records the final close status;
    /// - `/close-me`: sends close 4001 "server says bye" at once, records the final status;
    /// - `/burst`: sends `burstCount` binary messages of 64 KiB numbered in their first 4 bytes, then closes 1000.
    static func with<Result: Sendable>(
        configuration: WebSocketConfiguration = .init(),
        tls: TLSConfiguration? = nil,
        burstCount: Int = 200,
        _ body: @Sendable (EchoServer) async throws -> Result
    ) async throws -> Result {
        let closes = NIOLockedValueBox<[CloseStatus]>([])
        let burstSent = NIOLockedValueBox(0)
        let routes = [
            WebSocketRoute(path: "/echo", handler: .delegate { _ in EchoDelegate() }),
            WebSocketRoute(
                path: "/async-echo",
                shouldUpgrade: { request, _ in
                    .accept(subprotocol: request.subprotocols.first)
                },
                handler: .async { ws, _ in
                    for await message in ws.messages {
                        try? await ws.send(message.kind, message.payload)
                    }
                    let status = await ws.closeStatus
                    closes.withLockedValue { $0.append(status) }
                }
            ),
            WebSocketRoute(
                path: "/close-me",
                handler: .async { ws, _ in
                    let status = await ws.close(code: CloseCode(4001), reason: "server says bye")
                    closes.withLockedValue { $0.append(status) }
                }
            ),
            WebSocketRoute(
                path: "/burst",
                handler: .async { ws, _ in
                    for index in 0..<burstCount {
                        var payload = ws.channel.allocator.buffer(capacity: 65536)
                        payload.writeInteger(UInt32(index))
                        payload.writeRepeatingByte(UInt8(truncatingIfNeeded: index), count: 65536 - 4)
                        do {
                            try await ws.send(binary: payload)
                        } catch {
                            return
                        }
                        burstSent.withLockedValue { $0 += 1 }
                    }
                    await ws.close()
                }
            ),
        ]
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls, webSocket: configuration),
            routes: routes
        )
        return try await server.withRunning { server in
            try await body(EchoServer(server: server, serverCloses: closes, burstSent: burstSent))
        }
    }

    /// Waits (up to 5 s) until the server recorded `count` close statuses and returns them.
    func waitForServerCloses(_ count: Int) async -> [CloseStatus] {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while clock.now < deadline {
            let seen = self.serverCloses.withLockedValue { $0 }
            if seen.count >= count { return seen }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return self.serverCloses.withLockedValue { $0 }
    }
}
