import NIOConcurrencyHelpers
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// Event stream routes answered over HTTP/2 streams (h2c prior knowledge), several on one connection.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct HTTP2EventStreamTests {
    /// A numbered ticker resumed after `Last-Event-ID`, one event every `interval`; `cancelled` counts producers
    /// that saw cancellation.
    static func ticker(interval: Duration = .milliseconds(20), cancelled: Counter? = nil) -> EventStreamRoute {
        EventStreamRoute(
            path: "/ticker",
            shouldAccept: { request, _ in
                if request.queryValue("deny") != nil { return .reject(status: .forbidden, body: "no") }
                if request.queryValue("done") != nil { return .noContent }
                return .accept(headerFields: [.init("X-Route")!: "ticker"])
            },
            handler: .async { request, writer in
                var tick = (request.lastEventID.flatMap { Int($0) } ?? 0) + 1
                do {
                    while true {
                        try await writer.send(try ServerSentEvent(data: "\(tick)", id: "\(tick)"))
                        tick += 1
                        try await Task.sleep(for: interval)
                    }
                } catch {
                    cancelled?.increment()
                    throw error
                }
            }
        )
    }

    static func h2Server(_ routes: [EventStreamRoute]) -> Server {
        var configuration = Server.Configuration(port: 0)
        configuration.shutdownGracePeriod = .seconds(1)
        configuration.http2 = .init(cleartextPriorKnowledge: true)
        return Server(configuration: configuration, routes: [], eventStreamRoutes: routes)
    }

    @Test("several streams on one connection: headers, events, Last-Event-ID; a reset stream leaves the others")
    func severalStreams() async throws {
        let cancelled = Counter()
        try await Self.h2Server([Self.ticker(cancelled: cancelled)]).withRunning { server in
            let client = try await HTTP2TestClient.connect(port: server.port)
            let first = try await client.get("/ticker")
            let second = try await client.get("/ticker")
            let resumed = try await client.get("/ticker", [("last-event-id", "41")])
            #expect(await eventually { [first, second, resumed].allSatisfy { $0.events.count >= 3 } })
            #expect(first.status == "200")
            #expect(first.headers["content-type"] == "text/event-stream")
            #expect(first.headers["cache-control"] == "no-cache")
            #expect(first.headers["x-route"] == "ticker")
            for name in ["connection", "transfer-encoding", "content-encoding", "content-length", "keep-alive"] {
                #expect(first.headers[name] == nil)
            }
            #expect(first.events.prefix(3).map(\.lastEventID) == ["1", "2", "3"])
            #expect(resumed.events.prefix(3).map(\.data) == ["42", "43", "44"])

            second.reset()
            #expect(await eventually { cancelled.value == 1 })  // its producer was cancelled promptly
            #expect(await eventually { server.http2Statistics.openEventStreams == 2 })
            let counts = (first.events.count, resumed.events.count)
            #expect(await eventually { first.events.count > counts.0 + 3 && resumed.events.count > counts.1 + 3 })
            #expect(server.http2Statistics.connections == 1)
            #expect(server.http2Statistics.eventStreamsOpened == 3)
            await client.close()
            // The connection's close cancels the remaining producers.
            #expect(await eventually { cancelled.value == 3 })
        }
    }

    @Test("the accept hook over HTTP/2: 403 with its body, 204 without content-length, 405 for POST-like methods")
    func refusals() async throws {
        try await Self.h2Server([Self.ticker()]).withRunning { server in
            let client = try await HTTP2TestClient.connect(port: server.port)
            let denied = try await client.get("/ticker?deny=1")
            #expect(await eventually { denied.ended })
            #expect(denied.status == "403")
            #expect(String(decoding: denied.body, as: UTF8.self) == "no\n")
            let done = try await client.get("/ticker?done=1")
            #expect(await eventually { done.ended })
            #expect(done.status == "204")
            #expect(done.headers["content-length"] == nil && done.body.isEmpty)
            let malformed = try await client.get("/ticker", [("last-event-id", String(repeating: "x", count: 2000))])
            #expect(await eventually { malformed.ended })
            #expect(malformed.status == "400")
            #expect(server.http2Statistics.eventStreamsOpened == 0)
            await client.close()
        }
    }

    @Test("a producer that returns ends the stream with END_STREAM; callback and broadcast routes with history")
    func endAndBroadcast() async throws {
        let broadcaster = EventStreamBroadcaster()
        let routes = [
            EventStreamRoute(path: "/three", handler: .async { _, writer in
                for number in 1...3 { try await writer.send(ServerSentEvent(data: "\(number)")) }
            }),
            EventStreamRoute(path: "/broadcast", handler: .broadcast(broadcaster)),
            EventStreamRoute(path: "/callback", handler: .callback { _, writer in
                _ = writer.write(ServerSentEvent(data: "hello"))
                writer.finish()
            }),
        ]
        try await Self.h2Server(routes).withRunning { server in
            let client = try await HTTP2TestClient.connect(port: server.port)
            let three = try await client.get("/three")
            #expect(await eventually { three.ended })
            #expect(three.events.map(\.data) == ["1", "2", "3"])
            #expect(three.error == nil)
            let callback = try await client.get("/callback")
            #expect(await eventually { callback.ended })
            #expect(callback.events.map(\.data) == ["hello"])

            let live = try await client.get("/broadcast")
            #expect(await eventually { broadcaster.subscriberCount == 1 })
            for number in 1...5 { broadcaster.publish(try ServerSentEvent(data: "\(number)", id: "\(number)")) }
            #expect(await eventually { live.events.count == 5 })
            let resumed = try await client.get("/broadcast", [("last-event-id", "3")])
            #expect(await eventually { resumed.events.count == 2 })
            #expect(resumed.events.map(\.data) == ["4", "5"])
            await client.close()
        }
    }

    @Test("heartbeats, and the graceful shutdown ends every stream with END_STREAM")
    func heartbeatAndShutdown() async throws {
        let broadcaster = EventStreamBroadcaster()
        let quiet = EventStreamRoute(
            path: "/quiet",
            configuration: .init(heartbeatInterval: .milliseconds(100)),
            handler: .broadcast(broadcaster)
        )
        let server = Self.h2Server([quiet, Self.ticker(interval: .milliseconds(50))])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            _ = try await server.listeningAddress()
            let client = try await HTTP2TestClient.connect(port: server.port)
            let idle = try await client.get("/quiet")
            let ticking = try await client.get("/ticker")
            #expect(await eventually { idle.comments >= 2 && ticking.events.count >= 2 })
            await server.shutdown()
            #expect(await eventually { idle.ended && ticking.ended })
            #expect(idle.error == nil && ticking.error == nil)
            try await group.waitForAll()
            await client.close()
        }
    }

    @Test("a client that does not read: flow control pauses the producer, memory stays bounded")
    func flowControlBackpressure() async throws {
        let sent = Counter()
        let big = String(repeating: "x", count: 4000)
        let route = EventStreamRoute(
            path: "/flood",
            configuration: .init(heartbeatInterval: nil, maxBufferedBytes: 32 * 1024),
            handler: .async { _, writer in
                while true {
                    try await writer.send(ServerSentEvent(data: big))
                    sent.increment()
                }
            }
        )
        try await Self.h2Server([route]).withRunning { server in
            // The client stops reading: it sends no WINDOW_UPDATE, so the server may send at most the 65 535 bytes
            // of the initial connection window (RFC 9113 §6.9.2); the rest waits in the stream's 32 KiB buffer.
            let client = try await HTTP2TestClient.connect(port: server.port)
            try await client.channel.setOption(.autoRead, value: false).get()
            _ = try await client.get("/flood")
            try await Task.sleep(for: .milliseconds(800))
            let early = sent.value
            try await Task.sleep(for: .milliseconds(800))
            // Paused: the window and the 32 KiB buffer hold about 25 events of 4 KB.
            #expect(sent.value == early)
            #expect(early < 40)
            await client.close()
        }
    }
}
