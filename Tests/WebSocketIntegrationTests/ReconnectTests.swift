import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// A clock whose `sleep` records the duration and returns at once (time advances by it): backoff schedules
/// are checked without sleeping.
final class RecordingClock: Clock, @unchecked Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: self.offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - self.offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private let state = NIOLockedValueBox<(now: Instant, sleeps: [Duration])>((Instant(offset: .zero), []))
    var now: Instant { self.state.withLockedValue { $0.now } }
    var minimumResolution: Duration { .zero }
    var sleeps: [Duration] { self.state.withLockedValue { $0.sleeps } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try Task.checkCancellation()
        self.state.withLockedValue { state in
            state.sleeps.append(state.now.duration(to: deadline))
            state.now = max(state.now, deadline)
        }
        await Task.yield()
    }
}

@Suite("Client reconnection", .serialized, .timeLimit(.minutes(2)))
struct ReconnectTests {
    @Test("the backoff schedule: initial delay, multiplier, cap; jitter only shortens")
    func schedule() {
        let policy = WebSocketReconnectPolicy(
            initialDelay: .milliseconds(500),
            multiplier: 3,
            maxDelay: .seconds(10),
            jitter: 0.5
        )
        let exact = (1...6).map { policy.delay(beforeAttempt: $0, random: 0) }
        #expect(
            exact == [
                .milliseconds(500), .milliseconds(1500), .milliseconds(4500), .seconds(10), .seconds(10), .seconds(10),
            ]
        )
        #expect(policy.delay(beforeAttempt: 2, random: 0.999_999) > .milliseconds(750))
        #expect(policy.delay(beforeAttempt: 2, random: 0.5) == .milliseconds(1125))
        #expect(policy.delay(beforeAttempt: 10_000, random: 0) == .seconds(10))
        var generator = SeededGenerator(seed: 7)
        for attempt in 1...50 {
            let delay = policy.delay(beforeAttempt: attempt, using: &generator)
            let full = policy.delay(beforeAttempt: attempt, random: 0)
            #expect(delay <= full && delay >= full / 2)
        }
    }

    @Test("which close codes and connect errors reconnect")
    func triggers() {
        let policy = WebSocketReconnectPolicy()
        for code in [1006, 1001, 1011, 1012, 1013] as [UInt16] {
            #expect(policy.reconnects(after: CloseStatus(code: CloseCode(code))))
        }
        for code in [1000, 1002, 1003, 1007, 1008, 1009, 4000] as [UInt16] {
            #expect(!policy.reconnects(after: CloseStatus(code: CloseCode(code))))
        }
        #expect(WebSocketReconnectPolicy.retries(after: .timedOut))
        #expect(WebSocketReconnectPolicy.retries(after: .closedDuringHandshake))
        #expect(!WebSocketReconnectPolicy.retries(after: .invalidURL))
    }

    @Test("connect failures back off on the injected clock, then give up after maxAttempts")
    func backoffWithInjectedClock() async throws {
        let port = try await freePort()  // nothing listens: every attempt is refused at once
        let clock = RecordingClock()
        let events = NIOLockedValueBox<[WebSocketReconnectEvent]>([])
        let policy = WebSocketReconnectPolicy(
            initialDelay: .seconds(1),
            multiplier: 2,
            maxDelay: .seconds(5),
            jitter: 0.2,
            maxAttempts: 4
        )
        await #expect(throws: WebSocketClientError.connectFailed) {
            _ = try await WebSocket.withReconnectingConnection(
                to: "ws://127.0.0.1:\(port)/",
                reconnect: policy,
                clock: clock,
                random: { 0 },
                onEvent: { event in events.withLockedValue { $0.append(event) } }
            ) { _ in Issue.record("connected") }
        }
        #expect(clock.sleeps == [.seconds(1), .seconds(2), .seconds(4), .seconds(5)])
        let reconnecting = events.withLockedValue { $0 }.compactMap { event -> Int? in
            if case .reconnecting(let attempt, _) = event { return attempt }
            return nil
        }
        #expect(reconnecting == [1, 2, 3, 4])
        #expect(events.withLockedValue { $0.count } == 9)  // 5 failures, 4 waits
    }

    @Test("a 4xx answer is not retried")
    func rejectedNotRetried() async throws {
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0),
            routes: [
                WebSocketRoute(
                    path: "/",
                    shouldUpgrade: { _, _ in .reject(status: .forbidden) },
                    handler: .delegate { _ in EchoDelegate() }
                )
            ]
        )
        try await server.withRunning { server in
            let clock = RecordingClock()
            do {
                _ = try await WebSocket.withReconnectingConnection(
                    to: "ws://127.0.0.1:\(server.port)/",
                    clock: clock,
                    random: { 0 }
                ) { _ in }
                Issue.record("connected")
            } catch let error as WebSocketClientError {
                #expect(error.response?.status.code == 403)
            }
            #expect(clock.sleeps.isEmpty)
        }
    }

    @Test("a server that answers 503 then 101: the client retries and connects")
    func unavailableThenSwitching() async throws {
        let attempts = NIOLockedValueBox(0)
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0),
            routes: [
                WebSocketRoute(
                    path: "/",
                    shouldUpgrade: { _, _ in
                        let attempt = attempts.withLockedValue {
                            $0 += 1
                            return $0
                        }
                        return attempt < 3 ? .reject(status: .serviceUnavailable) : .accept()
                    },
                    handler: .delegate { _ in EchoDelegate() }
                )
            ]
        )
        try await server.withRunning { server in
            let clock = RecordingClock()
            let events = NIOLockedValueBox<[WebSocketReconnectEvent]>([])
            let status = try await WebSocket.withReconnectingConnection(
                to: "ws://127.0.0.1:\(server.port)/",
                clock: clock,
                random: { 0 },
                onEvent: { event in events.withLockedValue { $0.append(event) } }
            ) { ws in
                try await ws.send(text: "up")
                var iterator = ws.messages.makeAsyncIterator()
                #expect(await iterator.next()?.text == "up")
            }
            #expect(status.code == .normalClosure)
            #expect(clock.sleeps == [.seconds(1), .seconds(2)])
            let seen = events.withLockedValue { $0 }
            #expect(seen.count == 6)
            #expect(seen.last == .disconnected(CloseStatus(code: .normalClosure)))
            #expect(seen[4] == .connected)
        }
    }

    @Test("a normal close (1000) from the server ends the client without reconnecting; 1012 reconnects")
    func normalCloseEnds() async throws {
        let connections = NIOLockedValueBox(0)
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0),
            routes: [
                WebSocketRoute(
                    path: "/",
                    handler: .async { ws, _ in
                        let count = connections.withLockedValue {
                            $0 += 1
                            return $0
                        }
                        // First a service restart (reconnect), then a normal close (stop).
                        await ws.close(code: count == 1 ? .serviceRestart : .normalClosure, reason: "bye")
                    }
                )
            ]
        )
        try await server.withRunning { server in
            let clock = RecordingClock()
            let hooks = NIOLockedValueBox(0)
            let status = try await WebSocket.withReconnectingConnection(
                to: "ws://127.0.0.1:\(server.port)/",
                clock: clock,
                random: { 0 },
                onReconnect: { _ in hooks.withLockedValue { $0 += 1 } }
            ) { ws in
                for await _ in ws.messages {}
            }
            #expect(status.code == .normalClosure)
            #expect(connections.withLockedValue { $0 } == 2)
            #expect(hooks.withLockedValue { $0 } == 1)
            #expect(clock.sleeps == [.seconds(1)])
        }
    }

    struct Done: Error {}

    @Test("the heartbeat is on by default: a server that stops answering is dropped (1006) and reconnected")
    func heartbeatNoticesSilentServer() async throws {
        // Answers the upgrade, then never reads or answers a ping.
        let peer = try await ScriptedPeer.start { key, _ in ScriptedPeer.switchingProtocols(key: key) }
        var configuration = WebSocketClientConfiguration()
        configuration.webSocket.connection.pongTimeout = .milliseconds(200)
        configuration.webSocket.connection.closeTimeout = .milliseconds(200)
        let policy = WebSocketReconnectPolicy(heartbeatInterval: .milliseconds(200))
        let events = NIOLockedValueBox<[WebSocketReconnectEvent]>([])
        let rounds = NIOLockedValueBox(0)
        await #expect(throws: Done.self) {
            _ = try await WebSocket.withReconnectingConnection(
                to: "ws://127.0.0.1:\(peer.port)/",
                configuration: configuration,
                reconnect: policy,
                clock: RecordingClock(),
                random: { 0 },
                onEvent: { event in events.withLockedValue { $0.append(event) } }
            ) { ws in
                let round = rounds.withLockedValue {
                    $0 += 1
                    return $0
                }
                if round == 2 { throw Done() }
                for await _ in ws.messages {}
            }
        }
        let seen = events.withLockedValue { $0 }
        #expect(seen.first == .connected)
        #expect(seen.contains(.disconnected(CloseStatus(code: .abnormalClosure))))
        #expect(seen.contains(.reconnected(attempt: 1)))
        await peer.stop()
    }

    @Test(
        "the server killed (SIGKILL) and restarted on the same port: the client comes back and re-subscribes",
        .enabled(if: ChildProcess.isInstalled(ChildProcess.wsEcho))
    )
    func serverRestart() async throws {
        let first = try await ChildProcess.start(ChildProcess.wsEcho) { port, _ in ["--port", "\(port)"] }
        let port = first.port
        let events = NIOLockedValueBox<[WebSocketReconnectEvent]>([])
        let resubscribed = NIOLockedValueBox(0)
        let received = NIOLockedValueBox<[String]>([])
        let restarted = NIOLockedValueBox<ChildProcess?>(nil)
        let policy = WebSocketReconnectPolicy(initialDelay: .milliseconds(50), maxDelay: .milliseconds(200))
        let status = try await withTimeout(.seconds(60)) {
            try await withThrowingTaskGroup(of: CloseStatus?.self) { group in
                group.addTask {
                    try await WebSocket.withReconnectingConnection(
                        to: "ws://127.0.0.1:\(port)/",
                        reconnect: policy,
                        onEvent: { event in events.withLockedValue { $0.append(event) } },
                        onReconnect: { ws in
                            resubscribed.withLockedValue { $0 += 1 }
                            try await ws.send(text: "subscribe again")
                        }
                    ) { ws in
                        for await message in ws.messages {
                            received.withLockedValue { $0.append(message.text) }
                            if message.text == "subscribe again" { return }  // done: close with 1000
                        }
                    }
                }
                group.addTask {
                    #expect(await eventually { events.withLockedValue { $0.contains(.connected) } })
                    first.kill9()
                    // Let the client see 1006 and fail a few attempts against the closed port.
                    #expect(
                        await eventually {
                            events.withLockedValue {
                                $0.contains { if case .connectFailed = $0 { true } else { false } }
                            }
                        }
                    )
                    let second = try await ChildProcess.start(ChildProcess.wsEcho, port: port) { port, _ in
                        ["--port", "\(port)"]
                    }
                    restarted.withLockedValue { $0 = second }
                    return nil
                }
                var status: CloseStatus?
                for try await result in group {
                    if let result { status = result }
                }
                return status
            }
        }
        restarted.withLockedValue { $0 }?.stop()
        first.stop()
        #expect(status?.code == .normalClosure)
        #expect(resubscribed.withLockedValue { $0 } == 1)
        #expect(received.withLockedValue { $0 } == ["subscribe again"])
        let seen = events.withLockedValue { $0 }
        #expect(seen.first == .connected)
        #expect(seen.contains(.disconnected(CloseStatus(code: .abnormalClosure))))
        #expect(seen.contains { if case .reconnected = $0 { true } else { false } })
    }
}
