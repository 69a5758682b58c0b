import EventSourceClient
import NIOConcurrencyHelpers
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// The `EventSource` client against our server: events, reconnection with Last-Event-ID, the server's retry,
/// backoff with jitter (with an injected sleep: no test waits for real), and the failure rules.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct EventSourceClientTests {
    /// Records the waits the client asks for and returns at once.
    final class Sleeps: Sendable {
        private let box = NIOLockedValueBox<[Duration]>([])
        var values: [Duration] { box.withLockedValue { $0 } }
        var sleep: @Sendable (Duration) async throws -> Void {
            { duration in self.box.withLockedValue { $0.append(duration) } }
        }
    }

    func configuration(_ sleeps: Sleeps, random: Double = 0) -> EventSource.Configuration {
        var configuration = EventSource.Configuration()
        configuration.sleep = sleeps.sleep
        configuration.random = { random }
        return configuration
    }

    /// Ids from Last-Event-ID + 1, `perConnection` events per connection, `total` in all, then 204.
    func ticker(perConnection: Int, total: Int, retry: Int? = nil, seen: NIOLockedValueBox<[String?]>? = nil)
        -> EventStreamRoute
    {
        EventStreamRoute(
            path: "/t",
            configuration: .init(retry: retry),
            shouldAccept: { request, _ in
                seen?.withLockedValue { $0.append(request.lastEventID) }
                if let last = request.lastEventID.flatMap({ Int($0) }), last >= total { return .noContent }
                return .accept()
            },
            handler: .async { request, writer in
                let first = (request.lastEventID.flatMap { Int($0) } ?? 0) + 1
                for number in first..<min(first + perConnection, total + 1) {
                    try await writer.send(try ServerSentEvent(data: "\(number)", id: "\(number)"))
                }
            }
        )
    }

    func url(_ server: Server, _ path: String = "/t") -> String { "http://127.0.0.1:\(server.port)\(path)" }

    @Test("reconnects after each dropped connection with Last-Event-ID, gets every event once, stops at 204")
    func reconnectsWithLastEventID() async throws {
        let seen = NIOLockedValueBox<[String?]>([])
        let sleeps = Sleeps()
        try await makeServer([ticker(perConnection: 3, total: 7, seen: seen)]).withRunning { server in
            var data: [String] = []
            var opens = 0
            for try await output in try EventSource(url: url(server), configuration: configuration(sleeps)) {
                switch output {
                case .event(let event):
                    data.append(event.data)
                    #expect(event.lastEventID == event.data)
                case .open: opens += 1
                default: break
                }
            }
            #expect(data == (1...7).map(String.init))
            #expect(opens == 3)
        }
        #expect(seen.withLockedValue { $0 } == [nil, "3", "6", "7"])
        // After a stream that opened, the wait is the reconnection time (3 s by default), not more.
        #expect(sleeps.values == [.seconds(3), .seconds(3), .seconds(3)])
    }

    @Test("the server's retry sets the reconnection time")
    func serverRetry() async throws {
        let sleeps = Sleeps()
        try await makeServer([ticker(perConnection: 2, total: 4, retry: 250)]).withRunning { server in
            var retries: [Int] = []
            for try await output in try EventSource(url: url(server), configuration: configuration(sleeps)) {
                if case .retry(let milliseconds) = output { retries.append(milliseconds) }
            }
            #expect(retries == [250, 250])  // the third request gets 204: no stream
        }
        #expect(sleeps.values == [.milliseconds(250), .milliseconds(250)])
    }

    @Test("consecutive failures back off exponentially up to the cap, with jitter taken off")
    func backoff() async throws {
        // A port where nothing listens: every attempt fails.
        let server = makeServer([])
        let port = try await server.withRunning { $0.port }
        let sleeps = Sleeps()
        var configuration = configuration(sleeps, random: 0.5)
        configuration.reconnectionTime = .seconds(1)
        configuration.maxReconnectionDelay = .seconds(10)
        configuration.jitter = 0.2
        configuration.maxReconnectAttempts = 6
        let source = try EventSource(url: "http://127.0.0.1:\(port)/t", configuration: configuration)
        await #expect(throws: EventSourceError.self) {
            for try await _ in source {}
        }
        // 1, 2, 4, 8, 10 (cap), 10 s, each less 10 % (jitter 0.2 × random 0.5).
        #expect(sleeps.values == [.milliseconds(900), .milliseconds(1800), .milliseconds(3600), .milliseconds(7200),
                                  .seconds(9), .seconds(9)])
        #expect(EventSource.backoff(failures: 1, reconnectionTime: .seconds(3), multiplier: 2, cap: .seconds(30))
                == .seconds(3))
        #expect(EventSource.backoff(failures: 100, reconnectionTime: .seconds(3), multiplier: 2, cap: .seconds(30))
                == .seconds(30))
    }

    @Test("no reconnection after a status other than 200, or a wrong Content-Type")
    func failureRules() async throws {
        let refused = EventStreamRoute(path: "/no", shouldAccept: { _, _ in .reject(status: .forbidden) },
                                       handler: .async { _, _ in })
        var serverConfiguration = Server.Configuration(port: 0)
        serverConfiguration.shutdownGracePeriod = .seconds(1)
        let server = Server(
            configuration: serverConfiguration, routes: [], eventStreamRoutes: [refused],
            httpHandler: { _, _ in PlainHTTPResponse(status: .ok, text: "data: not a stream\n\n") }
        )
        let sleeps = Sleeps()
        try await server.withRunning { server in
            do {
                for try await _ in try EventSource(url: url(server, "/no"), configuration: configuration(sleeps)) {}
                Issue.record("no error")
            } catch let error as EventSourceError {
                guard case .badStatus(403) = error else { Issue.record("\(error)"); return }
            }
            do {
                for try await _ in try EventSource(url: url(server, "/plain"), configuration: configuration(sleeps)) {}
                Issue.record("no error")
            } catch let error as EventSourceError {
                guard case .wrongContentType(let type) = error else { Issue.record("\(error)"); return }
                #expect(type == "text/plain; charset=utf-8")
            }
        }
        #expect(sleeps.values.isEmpty)
    }

    @Test("custom header fields are sent (Authorization), with Accept: text/event-stream")
    func customHeaders() async throws {
        let route = EventStreamRoute(
            path: "/auth",
            shouldAccept: { request, _ in
                let accepted =
                    request.bearerToken == "t0k" && request.request.headerFields[.accept] == "text/event-stream"
                return accepted ? .accept() : .reject(status: .unauthorized)
            },
            handler: .async { _, writer in try await writer.send(ServerSentEvent(data: "ok")) }
        )
        let sleeps = Sleeps()
        var withToken = configuration(sleeps)
        withToken.headerFields[.authorization] = "Bearer t0k"
        let configuration = withToken
        try await makeServer([route]).withRunning { server in
            var iterator = try EventSource(url: url(server, "/auth"), configuration: configuration).makeAsyncIterator()
            #expect(try await iterator.next() == .open)
            #expect(try await iterator.next() == .event(MessageEvent(data: "ok")))
        }
    }

    @Test("URLs: http and https, ports, IPv6, targets; others refused")
    func urls() throws {
        let url = try EventSourceURL("http://[::1]:8080/a?b=c#frag")
        #expect(url.host == "::1")
        #expect(url.port == 8080)
        #expect(url.target == "/a?b=c")
        #expect(try EventSourceURL("https://example.com").port == 443)
        #expect(try EventSourceURL("https://example.com").target == "/")
        #expect(try EventSourceURL("http://example.com?x=1").target == "/?x=1")
        for bad in ["ws://x/", "http://", "http://u@x/", "http://x:0/", "http://x:99999/", "http://x/a b"] {
            #expect(throws: EventSourceError.self) { try EventSourceURL(bad) }
        }
    }
}
