import WebSocketClient

// Sends "hello" to the echo server, prints the answer, and closes with 1000 when the closure returns.
let url = CommandLine.arguments.dropFirst().first ?? "ws://127.0.0.1:8080/chat?access_token=secret"
try await WebSocket.withConnection(to: url) { webSocket in
    try await webSocket.send(text: "hello")
    for await message in webSocket.messages {
        print("received:", message.text)
        break
    }
}
