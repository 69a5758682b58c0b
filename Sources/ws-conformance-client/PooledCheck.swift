import WebSocketClient

/// The `--interop --pooled N` mode: N WebSockets to one echo server through one ``HTTP2ConnectionPool`` (used by
/// Tests/HTTP2 with a server on Python's `h2`, which counts the TCP connections it accepted).
///
/// Prints `pool connections C streams S` once all are open, `ok NAME` or `FAIL NAME: why` per check, and
/// `N passed, M failed` last.
struct PooledCheck {
    let url: String
    let configuration: WebSocketClientConfiguration
    let count: Int

    func run() async throws -> Bool {
        let pool = HTTP2ConnectionPool()
        var configuration = self.configuration
        configuration.http2Pool = pool
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
        var sockets: [WebSocket] = []
        for _ in 0..<count {
            sockets.append(try await WebSocket.connect(to: url, configuration: configuration))
        }
        var iterators = sockets.map { $0.messages.makeAsyncIterator() }
        let statistics = pool.statistics
        print("pool connections \(statistics.connections) streams \(statistics.streams)")
        for index in sockets.indices {
            try await sockets[index].send(text: "pooled \(index)")
            let echo = await iterators[index].next()
            check("echo[\(index)]", echo?.text == "pooled \(index)", "got \(echo?.text ?? "nothing")")
        }
        let first = await sockets[0].close(code: .normalClosure, reason: "first")
        check("close-first", first.code == .normalClosure, "got \(first.code)")
        for index in sockets.indices.dropFirst() {
            try await sockets[index].send(text: "still \(index)")
            let echo = await iterators[index].next()
            check("after-close[\(index)]", echo?.text == "still \(index)", "got \(echo?.text ?? "nothing")")
        }
        for socket in sockets.dropFirst() { _ = await socket.close() }
        await pool.shutdown()
        check("shutdown", pool.statistics.connections == 0, "\(pool.statistics.connections) left")
        print("\(passed) passed, \(failed) failed")
        return failed == 0
    }
}
