import NIOCore
import NIOSSL
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer

/// Our client against our server over HTTP/2 (RFC 8441). Interop with third-party peers (Python `h2` +
/// `wsproto`) is in Tests/HTTP2.
@Suite("WebSockets over HTTP/2: our client and our server")
struct HTTP2Tests {
    private func echoServer(tls: TLSConfiguration? = nil, http2: Server.HTTP2Configuration?, routes: Bool = true)
        -> Server
    {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0, tls: tls)
        configuration.http2 = http2
        configuration.perMessageDeflate = .init()
        let route = WebSocketRoute(path: "/echo", handler: .delegate { _ in EchoDelegate() })
        return Server(configuration: configuration, routes: routes ? [route] : [])
    }

    private func roundTrip(_ url: String, configuration: WebSocketClientConfiguration) async throws -> String? {
        try await withTimeout(.seconds(20)) {
            try await WebSocket.withConnection(to: url, configuration: configuration) { ws in
                try await ws.send(text: "over h2")
                for await message in ws.messages { return message.text }
                return nil
            }
        }
    }

    @Test("h2c prior knowledge: the WebSocket runs over an HTTP/2 stream, with permessage-deflate")
    func h2c() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true))
        try await server.withRunning { server in
            var configuration = WebSocketClientConfiguration()
            configuration.http2 = .priorKnowledge
            configuration.perMessageDeflate = .init()
            let echoed = try await roundTrip("ws://127.0.0.1:\(server.port)/echo", configuration: configuration)
            #expect(echoed == "over h2")
            #expect(server.http2Statistics.webSocketsOpened == 1)
            #expect(server.http2Statistics.connections == 1)
            #expect(await eventually { server.http2Statistics.openWebSockets == 0 })
        }
    }

    @Test("TLS with ALPN h2", .enabled(if: TestCertificate.isAvailable))
    func tls() async throws {
        let certificate = try TestCertificate.make()
        let server = echoServer(tls: try certificate.serverTLS(), http2: .init())
        try await server.withRunning { server in
            var configuration = try certificate.clientConfiguration()
            configuration.http2 = .preferred
            let echoed = try await roundTrip("wss://127.0.0.1:\(server.port)/echo", configuration: configuration)
            #expect(echoed == "over h2")
            #expect(server.http2Statistics.webSocketsOpened == 1)
        }
    }

    @Test("the client falls back to HTTP/1.1 when the server has no HTTP/2", .enabled(if: TestCertificate.isAvailable))
    func fallbackWithoutHTTP2() async throws {
        let certificate = try TestCertificate.make()
        let server = echoServer(tls: try certificate.serverTLS(), http2: nil)
        try await server.withRunning { server in
            var configuration = try certificate.clientConfiguration()
            configuration.http2 = .preferred
            let echoed = try await roundTrip("wss://127.0.0.1:\(server.port)/echo", configuration: configuration)
            #expect(echoed == "over h2")
            #expect(server.http2Statistics.connections == 0)
        }
    }

    @Test("the client falls back to HTTP/1.1 when the server does not advertise extended CONNECT")
    func fallbackWithoutSetting() async throws {
        // h2c on, but the only route is not a WebSocket route: SETTINGS_ENABLE_CONNECT_PROTOCOL is not sent.
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true), routes: false)
        try await server.withRunning { server in
            var configuration = WebSocketClientConfiguration()
            configuration.http2 = .priorKnowledge
            await #expect(throws: WebSocketClientError.handshakeRejected) {
                _ = try await roundTrip("ws://127.0.0.1:\(server.port)/echo", configuration: configuration)
            }
            // It tried HTTP/2 first, found no extended CONNECT, and asked again over HTTP/1.1 (which got 404).
            #expect(server.http2Statistics.connections == 1)
            #expect(server.http2Statistics.streams == 0)
        }
    }

    @Test("graceful shutdown closes WebSockets over HTTP/2 with 1001")
    func shutdown() async throws {
        let server = echoServer(http2: .init(cleartextPriorKnowledge: true))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            _ = try await server.listeningAddress()
            var configuration = WebSocketClientConfiguration()
            configuration.http2 = .priorKnowledge
            let url = "ws://127.0.0.1:\(server.port)/echo"
            let ws = try await WebSocket.connect(to: url, configuration: configuration)
            #expect(server.http2Statistics.openWebSockets == 1)
            await server.shutdown()
            let status = await ws.closeStatus
            #expect(status.code == .goingAway)
            try await group.waitForAll()
        }
    }
}
