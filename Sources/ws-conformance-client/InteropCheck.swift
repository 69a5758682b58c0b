import WebSocketClient

/// The `--interop` mode: our client against any echo server (used by Tests/Interop with python-websockets).
///
/// Every check prints `ok NAME` or `FAIL NAME: why`; the last line is `N passed, M failed`.
struct InteropCheck {
    let url: String
    let configuration: WebSocketClientConfiguration

    func run() async throws -> Bool {
        let ws = try await WebSocket.connect(to: self.url, configuration: self.configuration)
        var iterator = ws.messages.makeAsyncIterator()
        var passed = 0
        var failed = 0
        func check(_ name: String, _ condition: Bool, _ detail: @autoclosure () -> String = "") {
            if condition {
                passed += 1
                print("ok \(name)")
            } else {
                failed += 1
                print("FAIL \(name): \(detail())")
            }
        }
        print("subprotocol \(ws.subprotocol ?? "-")")

        for text in ["hello", "", "héllo wörld ✓ 🎉", String(repeating: "a", count: 70_000)] {
            try await ws.send(text: text)
            let echo = await iterator.next()
            check(
                "text[\(text.utf8.count)]",
                echo?.kind == .text && echo?.text == text,
                "got \(echo.map { "\($0.kind) \($0.payload.readableBytes) bytes" } ?? "nothing")"
            )
        }
        for size in [0, 1, 125, 126, 65535, 65536, 1 << 20] {
            var payload = ByteBuffer()
            payload.writeBytes((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            try await ws.send(binary: payload)
            let echo = await iterator.next()
            check(
                "binary[\(size)]",
                echo?.kind == .binary && echo?.payload == payload,
                "got \(echo.map { "\($0.kind) \($0.payload.readableBytes) bytes" } ?? "nothing")"
            )
        }
        let parts = ["frag", "mented ", "message"].map { ByteBuffer(string: $0) }
        try await ws.send(.text, fragments: parts)
        let joined = await iterator.next()
        check(
            "fragmented",
            joined?.kind == .text && joined?.text == "fragmented message",
            "got \(joined?.text ?? "nothing")"
        )

        try await ws.ping(ByteBuffer(string: "are you there"))
        try await ws.send(text: "after ping")
        let afterPing = await iterator.next()
        check("ping-then-text", afterPing?.text == "after ping", "got \(afterPing?.text ?? "nothing")")

        let status = await ws.close(code: .normalClosure, reason: "bye")
        check(
            "close",
            status.code == .normalClosure,
            "closed with \(status.code.rawValue) \(status.reason)"
        )
        // Exit only once the transport is closed: over HTTP/2 the stream ends first, then its connection (after a
        // GOAWAY that also flushes the stream's END_STREAM).
        try? await ws.channel.closeFuture.get()
        try? await ws.channel.parent?.closeFuture.get()
        print("\(passed) passed, \(failed) failed")
        return failed == 0
    }
}
