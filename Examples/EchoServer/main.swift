import WebSocketServer

// A WebSocket echo server on ws://127.0.0.1:8080/chat (or the port given as the first argument) that only
// accepts clients with ?access_token=secret. It runs until SIGINT (Ctrl-C) or SIGTERM, then sends close 1001
// to every client and waits for them (at most 5 seconds) before it exits.
let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8080
let server = Server(
    configuration: .init(host: "127.0.0.1", port: port),
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
let services = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigint, .sigterm])
try await services.run()
