import NIOConcurrencyHelpers
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// Event stream routes on the server: the response, the decision hook, resumption, heartbeats, buffering,
/// disconnects and shutdown.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ServerRouteTests {
    static func numbers(_ range: ClosedRange<Int>) -> EventStreamRoute.Handler {
        .async { _, writer in
            for number in range { try await writer.send(try ServerSentEvent(data: "\(number)", id: "\(number)")) }
        }
    }

    /// Headers of the issue; the events in order; the stream (and its final chunk) ends with the producer.
    @Test("200, text/event-stream, no-cache, X-Accel-Buffering: no, no coding, chunked; ends with the producer")
    func responseHead() async throws {
        let server = makeServer([EventStreamRoute(path: "/events", handler: Self.numbers(1...3))])
        try await server.withRunning { server in
            let client = try await rawStream(server, "/events")
            let bytes = await client.wait { StreamResponse($0)?.ended == true }
            let response = try #require(StreamResponse(bytes))
            #expect(response.status == 200)
            #expect(response.head.header("Content-Type") == "text/event-stream")
            #expect(response.head.header("Cache-Control") == "no-cache")
            #expect(response.head.header("X-Accel-Buffering") == "no")
            #expect(response.head.header("Transfer-Encoding") == "chunked")
            #expect(response.head.header("Content-Encoding") == nil)
            #expect(response.head.header("Content-Length") == nil)
            #expect(response.events.map(\.data) == ["1", "2", "3"])
            #expect(response.events.map(\.lastEventID) == ["1", "2", "3"])
            #expect(response.ended)
            #expect(await eventually { client.isClosed })
        }
    }

    @Test("each event is flushed as it is written (the next is produced only after the client has the first)")
    func eachEventFlushed() async throws {
        let gate = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let route = EventStreamRoute(path: "/events", handler: .async { _, writer in
            try await writer.send(ServerSentEvent(data: "first"))
            await withCheckedContinuation { continuation in gate.withLockedValue { $0 = continuation } }
            try await writer.send(ServerSentEvent(data: "second"))
        })
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/events")
            let first = await waitForEvents(client, 1)
            #expect(first?.events.map(\.data) == ["first"])
            #expect(await eventually { gate.withLockedValue { $0 != nil } })
            gate.withLockedValue { $0?.resume() }
            let both = await waitForEvents(client, 2)
            #expect(both?.events.map(\.data) == ["first", "second"])
        }
    }

    @Test("the events of an AsyncSequence; Last-Event-ID is handed to the handler")
    func asyncSequenceAndLastEventID() async throws {
        let seen = NIOLockedValueBox<[String?]>([])
        let route = EventStreamRoute(path: "/seq", handler: .events { request in
            seen.withLockedValue { $0.append(request.lastEventID) }
            let start = Int(request.lastEventID ?? "0") ?? 0
            return AsyncStream { continuation in
                for number in (start + 1)...(start + 2) {
                    continuation.yield(try! ServerSentEvent(data: "\(number)", id: "\(number)"))
                }
                continuation.finish()
            }
        })
        try await makeServer([route]).withRunning { server in
            let fresh = try await rawStream(server, "/seq")
            #expect(await waitForEvents(fresh, 2)?.events.map(\.data) == ["1", "2"])
            let resumed = try await rawStream(server, "/seq", ["Last-Event-ID: 41"])
            #expect(await waitForEvents(resumed, 2)?.events.map(\.data) == ["42", "43"])
        }
        #expect(seen.withLockedValue { $0 } == [nil, "41"])
    }

    @Test("a retry hint starts the stream")
    func retryHint() async throws {
        let route = EventStreamRoute(path: "/r", configuration: .init(retry: 1500), handler: Self.numbers(1...1))
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/r")
            let response = await waitForEvents(client, 1)
            #expect(response?.outputs.first == .retry(1500))
        }
    }

    @Test("the decision hook: bearer token from Authorization or access_token, Origin, 204")
    func decisionHook() async throws {
        let route = EventStreamRoute(
            path: "/private",
            shouldAccept: { request, _ in
                if request.queryValue("stop") == "1" { return .noContent }
                if let origin = request.origin, origin != "https://good.example" {
                    return .reject(status: .forbidden, body: "bad origin")
                }
                guard request.bearerToken == "s3cret" else {
                    return .reject(status: .unauthorized, body: "no", headerFields: [.wwwAuthenticate: "Bearer"])
                }
                return .accept(headerFields: [.init("X-Stream")!: "yes"])
            },
            handler: Self.numbers(1...1)
        )
        try await makeServer([route]).withRunning { server in
            var client = try await rawStream(server, "/private")
            var response = await client.waitForResponse()
            #expect(response?.status == 401)
            #expect(response?.header("WWW-Authenticate") == "Bearer")

            client = try await rawStream(server, "/private", ["Authorization: Bearer s3cret"])
            let accepted = await waitForEvents(client, 1)
            #expect(accepted?.status == 200)
            #expect(accepted?.head.header("X-Stream") == "yes")
            #expect(accepted?.events.count == 1)

            client = try await rawStream(server, "/private?access_token=s3cret")
            #expect(await waitForEvents(client, 1)?.events.count == 1)

            client = try await rawStream(server, "/private?access_token=s3cret", ["Origin: https://evil.example"])
            response = await client.waitForResponse()
            #expect(response?.status == 403)

            client = try await rawStream(server, "/private?stop=1")
            let bytes = await client.wait { _ in false }  // until closed
            response = RawResponse(bytes)
            #expect(response?.status == 204)
            #expect(response?.header("Content-Length") == nil)
            #expect(response?.header("Transfer-Encoding") == nil)
            #expect(response?.rest.isEmpty == true)
        }
    }

    @Test("bad requests: malformed Last-Event-ID (too long, twice), POST")
    func badRequests() async throws {
        let route = EventStreamRoute(
            path: "/e", configuration: .init(maxLastEventIDLength: 8), handler: Self.numbers(1...1)
        )
        try await makeServer([route]).withRunning { server in
            var client = try await rawStream(server, "/e", ["Last-Event-ID: 123456789"])
            #expect(await client.waitForResponse()?.status == 400)
            client = try await rawStream(server, "/e", ["Last-Event-ID: 1", "Last-Event-ID: 2"])
            #expect(await client.waitForResponse()?.status == 400)
            client = try await RawTestClient.connect(port: server.port)
            try await client.send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            let response = await client.waitForResponse()
            #expect(response?.status == 405)
            #expect(response?.header("Allow") == "GET")
            // The server is fine afterwards.
            client = try await rawStream(server, "/e", ["Last-Event-ID: 12345678"])
            #expect(await waitForEvents(client, 1)?.status == 200)
        }
    }

    @Test("heartbeat comments at the configured interval; none when off")
    func heartbeats() async throws {
        let idle: EventStreamRoute.Handler = .async { _, _ in try await Task.sleep(for: .seconds(60)) }
        let on = EventStreamRoute(
            path: "/on", configuration: .init(heartbeatInterval: .milliseconds(50)), handler: idle
        )
        let off = EventStreamRoute(path: "/off", configuration: .init(heartbeatInterval: nil), handler: idle)
        try await makeServer([on, off]).withRunning { server in
            let withHeartbeat = try await rawStream(server, "/on")
            let without = try await rawStream(server, "/off")
            #expect(await without.waitForResponse()?.status == 200)
            let bytes = await withHeartbeat.wait(timeout: .seconds(15)) { bytes in
                (StreamResponse(bytes)?.outputs.filter { $0 == .comment("") }.count ?? 0) >= 3
            }
            #expect((StreamResponse(bytes)?.outputs.count ?? 0) >= 3)
            let quiet = try #require(StreamResponse(without.received))
            #expect(quiet.status == 200)
            #expect(quiet.outputs.isEmpty)
            await withHeartbeat.close()
            await without.close()
        }
    }

    @Test("a client that goes away cancels its producer promptly")
    func clientGoneCancelsProducer() async throws {
        let started = Counter()
        let cancelled = Counter()
        let route = EventStreamRoute(path: "/e", handler: .async { _, writer in
            try await writer.send(ServerSentEvent(data: "hi"))
            started.increment()
            do {
                try await Task.sleep(for: .seconds(60))
            } catch {
                cancelled.increment()
                throw error
            }
        })
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/e")
            #expect(await waitForEvents(client, 1)?.events.count == 1)
            #expect(await eventually { started.value == 1 })
            await client.close()
            #expect(await eventually(timeout: .seconds(2)) { cancelled.value == 1 })
        }
    }

    @Test("a client that never reads: the producer is paused at the buffer limit (memory stays bounded)")
    func slowReaderPausesProducer() async throws {
        let sent = Counter()
        let payload = String(repeating: "x", count: 1000)
        var configuration = EventStreamRoute.Configuration(heartbeatInterval: nil)
        configuration.maxBufferedBytes = 16 * 1024
        let route = EventStreamRoute(path: "/flood", configuration: configuration, handler: .async { _, writer in
            for _ in 0..<100_000 {
                try await writer.send(ServerSentEvent(data: payload))
                sent.increment()
            }
        })
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/flood", autoRead: false, receiveBufferSize: 4096)
            // Wait until the producer stalls: the count stops moving.
            var previous = -1
            for _ in 0..<50 {
                try await Task.sleep(for: .milliseconds(100))
                if sent.value == previous, previous > 0 { break }
                previous = sent.value
            }
            // Kernel buffers (both sides) plus our 16 KiB: far below the 100 MB the producer wanted to write.
            #expect(sent.value > 0)
            #expect(sent.value < 20_000, "producer was not paused: \(sent.value) events of 1 kB sent")
            try await Task.sleep(for: .milliseconds(300))
            #expect(sent.value == previous)
            await client.close()
        }
    }

    @Test("graceful shutdown ends every stream with the final chunk, and run() returns")
    func shutdownEndsStreams() async throws {
        let route = EventStreamRoute(path: "/e", handler: .async { _, writer in
            try await writer.send(ServerSentEvent(data: "hi"))
            try await Task.sleep(for: .seconds(60))
        })
        let server = makeServer([route])
        let clients = try await server.withRunning { server in
            var clients: [RawTestClient] = []
            for _ in 0..<5 {
                let client = try await rawStream(server, "/e")
                #expect(await waitForEvents(client, 1)?.events.count == 1)
                clients.append(client)
            }
            return clients
        }
        for client in clients {
            #expect(await eventually { client.isClosed })
            #expect(StreamResponse(client.received)?.ended == true)
        }
    }

    @Test("many streams at once are all served")
    func manyStreams() async throws {
        let server = makeServer([EventStreamRoute(path: "/e", handler: Self.numbers(1...2))])
        try await server.withRunning { server in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 {
                    group.addTask {
                        let client = try await rawStream(server, "/e")
                        let bytes = await client.wait(timeout: .seconds(20)) { StreamResponse($0)?.ended == true }
                        await client.close()
                        return StreamResponse(bytes)?.events.count ?? 0
                    }
                }
                var total = 0
                for try await count in group { total += count }
                #expect(total == 400)
            }
        }
    }

    @Test("the callback form writes from the event loop and learns of the close")
    func callbackForm() async throws {
        let closed = Counter()
        let route = EventStreamRoute(path: "/cb", handler: .callback { request, writer in
            writer.eventLoop.preconditionInEventLoop()
            writer.write(ServerSentEvent(data: "from the loop"))
            writer.write(try! ServerSentEvent(data: "\(request.lastEventID ?? "none")", id: "7"))
            writer.onClose { closed.increment() }
        })
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/cb")
            let response = await waitForEvents(client, 2)
            #expect(response?.events.map(\.data) == ["from the loop", "none"])
            await client.close()
            #expect(await eventually { closed.value == 1 })
        }
    }

    @Test("an event stream route and a WebSocket route on the same path")
    func sharedPath() async throws {
        let webSocket = WebSocketRoute(path: "/both", handler: .async { ws, _ in
            try await ws.send(text: "ws")
        })
        let stream = EventStreamRoute(path: "/both", handler: Self.numbers(1...1))
        try await makeServer([stream], webSocketRoutes: [webSocket]).withRunning { server in
            let client = try await rawStream(server, "/both")
            #expect(await waitForEvents(client, 1)?.status == 200)
            let upgrade = try await RawTestClient.connect(port: server.port)
            try await upgrade.send(upgradeRequest(path: "/both"))
            #expect(await upgrade.waitForResponse()?.status == 101)
        }
    }
}
