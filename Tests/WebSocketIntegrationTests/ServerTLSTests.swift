import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

@Suite("Server over TLS (wss)")
struct ServerTLSTests {
    @Test(
        "the upgrade and an early frame work over TLS",
        .enabled(if: TestCertificate.isAvailable)
    )
    func tlsEcho() async throws {
        let tls = try TestCertificate.make().serverTLS()
        let seenSecure = NIOLockedValueBox(false)
        let route = WebSocketRoute(
            path: "/ws",
            shouldUpgrade: { _, connection in
                seenSecure.withLockedValue { $0 = connection.isSecure }
                return .accept()
            },
            handler: .delegate { _ in EchoDelegate() }
        )
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls),
            routes: [route]
        )
        try await server.withRunning { server in
            let client = try await RawTestClient.connect(port: server.port, tls: true)
            let payload = Array("over tls".utf8)
            try await client.send(Array(upgradeRequest().utf8) + maskedFrame(opcode: 0x1, payload))
            let bytes = await client.wait { RawResponse($0).flatMap { RawFrame.parse($0.rest) } != nil }
            let response = try #require(RawResponse(bytes))
            #expect(response.status == 101)
            #expect(RawFrame.parse(response.rest)?.payload == payload)
            #expect(seenSecure.withLockedValue { $0 })
            await client.close()
        }

        // Plain HTTP on the TLS port gets no HTTP answer.
        let server2 = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls),
            routes: [route]
        )
        try await server2.withRunning { server2 in
            let plain = try await RawTestClient.connect(port: server2.port)
            try await plain.send(upgradeRequest())
            let answer = await plain.wait(timeout: .seconds(3))
            #expect(RawResponse(answer) == nil)
            await plain.close()
        }
    }
}
