import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// Redirects of the opening handshake against our server (relative and absolute, loops, too many hops, wss→ws,
/// Authorization across origins), and the request's Origin and Authorization fields.
@Suite("Client redirects and request headers", .timeLimit(.minutes(2)))
struct RedirectAndHeaderTests {
    /// What `/record` saw: path and the Authorization, Origin, Cookie and X-Extra fields.
    typealias Seen = (path: String, authorization: String?, origin: String?, cookie: String?, extra: String?)

    /// A server with redirect routes and a recording echo route `/record`.
    static func withServer<T: Sendable>(
        tls: TLSConfiguration? = nil,
        _ body: @Sendable (Server, NIOLockedValueBox<[Seen]>) async throws -> T
    ) async throws -> T {
        let seen = NIOLockedValueBox<[Seen]>([])
        func redirect(
            _ path: String,
            _ status: HTTPResponse.Status,
            _ location: @escaping @Sendable (HTTPRequest) -> String
        )
            -> WebSocketRoute
        {
            WebSocketRoute(
                path: path,
                shouldUpgrade: { request, _ in
                    .reject(status: status, headerFields: [.location: location(request.request)])
                },
                handler: .delegate { _ in EchoDelegate() }
            )
        }
        var routes = [
            WebSocketRoute(
                path: "/record",
                shouldUpgrade: { request, _ in
                    let fields = request.headerFields
                    seen.withLockedValue {
                        $0.append(
                            (
                                request.path, fields[.authorization], fields[.origin], fields[.cookie],
                                HTTPField.Name("X-Extra").flatMap { fields[$0] }
                            )
                        )
                    }
                    return .accept()
                },
                handler: .delegate { _ in EchoDelegate() }
            ),
            redirect("/relative", .movedPermanently) { _ in "record" },
            redirect("/absolute", .permanentRedirect) { request in
                "\(tls == nil ? "ws" : "wss")://\(request.authority ?? "")/record"
            },
            redirect("/http-scheme", .seeOther) { request in "http://\(request.authority ?? "")/record" },
            redirect("/loop-a", .found) { _ in "/loop-b" },
            redirect("/loop-b", .temporaryRedirect) { _ in "/loop-a" },
            redirect("/downgrade", .found) { request in "ws://\(request.authority ?? "")/record" },
        ]
        for hop in 0..<7 {
            routes.append(redirect("/hop\(hop)", .temporaryRedirect) { _ in "/hop\(hop + 1)" })
        }
        let server = Server(configuration: .init(host: "127.0.0.1", port: 0, tls: tls), routes: routes)
        return try await server.withRunning { server in try await body(server, seen) }
    }

    @Test(
        "relative, absolute and http:// Locations are followed",
        arguments: ["/relative", "/absolute", "/http-scheme"]
    )
    func followed(path: String) async throws {
        try await Self.withServer { server, seen in
            try await WebSocket.withConnection(to: "ws://127.0.0.1:\(server.port)\(path)") { ws in
                try await ws.send(text: "hi")
                var iterator = ws.messages.makeAsyncIterator()
                #expect(await iterator.next()?.text == "hi")
            }
            #expect(seen.withLockedValue { $0.map(\.path) } == ["/record"])
        }
    }

    @Test("a loop and too many hops are clear errors; maxRedirects 0 follows none")
    func loopAndHops() async throws {
        try await Self.withServer { server, _ in
            for (path, expected) in [
                ("/loop-a", WebSocketRedirectError.loop), ("/hop0", WebSocketRedirectError.tooManyRedirects),
            ] {
                do throws(WebSocketClientError) {
                    _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)\(path)")
                    Issue.record("connected")
                } catch {
                    #expect(error == .redirectFailed)
                    #expect(error.redirectError == expected, "\(error)")
                }
            }
            // Five hops are fine with the default; hop2 → … → hop7 needs 5, then /hop7 → /hop8 is a 404.
            var configuration = WebSocketClientConfiguration()
            configuration.maxRedirects = 0
            do throws(WebSocketClientError) {
                _ = try await WebSocket.connect(
                    to: "ws://127.0.0.1:\(server.port)/relative",
                    configuration: configuration
                )
                Issue.record("connected")
            } catch {
                #expect(error == .handshakeRejected)
                #expect(error.response?.status.code == 301)
            }
        }
    }

    @Test("wss never follows a redirect to ws", .enabled(if: TestCertificate.isAvailable))
    func downgrade() async throws {
        let certificate = try TestCertificate.make()
        try await Self.withServer(tls: try certificate.serverTLS()) { server, seen in
            let configuration = try certificate.clientConfiguration()
            do throws(WebSocketClientError) {
                _ = try await WebSocket.connect(
                    to: "wss://127.0.0.1:\(server.port)/downgrade",
                    configuration: configuration
                )
                Issue.record("followed wss → ws")
            } catch {
                #expect(error.redirectError == .insecureRedirect, "\(error)")
            }
            // wss → wss is followed.
            let ws = try await WebSocket.connect(
                to: "wss://127.0.0.1:\(server.port)/absolute",
                configuration: configuration
            )
            await ws.close()
            #expect(seen.withLockedValue { $0.count } == 1)
        }
    }

    @Test("Authorization and Cookie go to the same origin only; Origin and other fields always")
    func credentialsAcrossOrigins() async throws {
        try await Self.withServer { target, seen in
            // A second server (another port: another origin) that redirects to the first.
            let front = Server(
                configuration: .init(host: "127.0.0.1", port: 0),
                routes: [
                    WebSocketRoute(
                        path: "/elsewhere",
                        shouldUpgrade: { _, _ in
                            .reject(
                                status: .temporaryRedirect,
                                headerFields: [.location: "ws://127.0.0.1:\(target.port)/record"]
                            )
                        },
                        handler: .delegate { _ in EchoDelegate() }
                    )
                ]
            )
            try await front.withRunning { front in
                var configuration = WebSocketClientConfiguration()
                configuration.authorization = try WebSocketClientConfiguration.basicAuthorization(
                    username: "u",
                    password: "p"
                )
                configuration.origin = "https://app.example"
                configuration.headerFields[.cookie] = "session=1"
                configuration.headerFields[try #require(HTTPField.Name("X-Extra"))] = "kept"
                // Same origin: credentials sent.
                let same = try await WebSocket.connect(
                    to: "ws://127.0.0.1:\(target.port)/relative",
                    configuration: configuration
                )
                await same.close()
                // Another origin: dropped.
                let other = try await WebSocket.connect(
                    to: "ws://127.0.0.1:\(front.port)/elsewhere",
                    configuration: configuration
                )
                await other.close()
            }
            let requests = seen.withLockedValue { $0 }
            try #require(requests.count == 2)
            #expect(requests[0].authorization == "Basic dTpw")
            #expect(requests[0].cookie == "session=1")
            #expect(requests[1].authorization == nil)
            #expect(requests[1].cookie == nil)
            for request in requests {
                #expect(request.origin == "https://app.example")
                #expect(request.extra == "kept")
            }
        }
    }

    @Test("one connect timeout covers every redirect")
    func timeoutOverRedirects() async throws {
        // A server that answers each request with a redirect to itself on a new path, without end.
        let peer = try await ScriptedPeer.start(closeAfterResponse: true) { _, head in
            let target = head.startLine.split(separator: " ").dropFirst().first ?? "/0"
            let next = (Int(target.dropFirst()) ?? 0) + 1
            return Array("HTTP/1.1 307 Temporary Redirect\r\nLocation: /\(next)\r\nContent-Length: 0\r\n\r\n".utf8)
        }
        var configuration = WebSocketClientConfiguration()
        configuration.connectTimeout = .milliseconds(400)
        configuration.maxRedirects = 1_000_000
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: WebSocketClientError.timedOut) {
            _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(peer.port)/0", configuration: configuration)
        }
        #expect(clock.now - start < .seconds(3))
        await peer.stop()
    }
}
