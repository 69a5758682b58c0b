import Testing
import WebSocketClient
import WebSocketCore
import WebSocketServer

/// The server and client examples of README.md, compiled and run, so the README stays true.
@Suite("README examples")
struct ReadmeExampleTests {
    @Test("the README's echo route with an access_token check, and the README's client", .timeLimit(.minutes(1)))
    func readmeServerAndClient() async throws {
        // --- README: server ---
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0),
            routes: [
                WebSocketRoute(
                    path: "/chat",
                    shouldUpgrade: { request, _ in  // auth, Origin, subprotocol: decided before the 101
                        request.queryValue("access_token") == "secret"
                            ? .accept(subprotocol: request.subprotocols.first)
                            : .reject(status: .unauthorized, body: "missing token")
                    },
                    handler: .async { webSocket, _ in
                        for await message in webSocket.messages {
                            try await webSocket.send(message.kind, message.payload)
                        }
                    }
                )
            ]
        )
        try await server.withRunning { server in  // or `try await server.run()` under a ServiceGroup
            // --- end ---

            // --- README: client ---
            let webSocket = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/chat?access_token=secret")
            try await webSocket.send(text: "hello")
            for await message in webSocket.messages {
                #expect(message.text == "hello")
                break
            }
            // --- end ---
            _ = await webSocket.close()

            await #expect(throws: WebSocketClientError.handshakeRejected) {
                _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/chat")
            }
        }
    }
}
