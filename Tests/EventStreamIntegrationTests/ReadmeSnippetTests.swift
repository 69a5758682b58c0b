import EventSourceClient
import Testing
import WebSocketServer

/// The README's Server-Sent Events snippets, compiled (and the objects made) so that the README stays true.
@Suite struct ReadmeSnippetTests {
    @Test("the server snippet builds a server")
    func serverSnippet() throws {
        let ticks = EventStreamBroadcaster()  // keeps the last 1000 events (and at most 1 MiB) for replay
        let server = Server(
            configuration: .init(port: 8080),
            routes: [],
            eventStreamRoutes: [
                // Every client gets the live events; one that reconnects with Last-Event-ID gets what it missed first.
                EventStreamRoute(path: "/ticks", handler: .broadcast(ticks)),
                // One producer per client; request.lastEventID is the client's Last-Event-ID.
                EventStreamRoute(
                    path: "/mine",
                    shouldAccept: { request, _ in
                        request.bearerToken == "secret" ? .accept() : .reject(status: .unauthorized)
                    },
                    handler: .async { request, writer in
                        try await writer.send(try ServerSentEvent(type: "hello", data: "line 1\nline 2", id: "1"))
                    }
                ),
            ]
        )
        ticks.publish(try ServerSentEvent(data: "1", id: "1"))   // encoded once, written to every stream
        #expect(server.port == 0)
        #expect(ticks.historyIDs == ["1"])
    }

    @Test("the client snippet makes an EventSource")
    func clientSnippet() throws {
        var configuration = EventSource.Configuration()
        configuration.headerFields[.authorization] = "Bearer secret"
        let source = try EventSource(url: "http://127.0.0.1:8080/mine", configuration: configuration)
        #expect(source.url.port == 8080)
    }
}
