import HubClient
import HubProtocol
import Hubs
import NIOConcurrencyHelpers
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

@Suite struct InvocationTests {
    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func invokeWithResultAndError(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        try await withClient(hubProtocol) { hub, _ in
            #expect(hub.connectionId?.isEmpty == false)
            let value1 = try await hub.invoke("Add", 2, 40, returning: Int.self)
            #expect(value1 == 42)
            let value2 = try await hub.invoke("Echo", "héllo", returning: String.self)
            #expect(value2 == "héllo")
            try await hub.invoke("Nothing")
            let optional = try await hub.invoke("Nothing", returning: Int?.self)
            #expect(optional == nil)
            let error = await #expect(throws: HubInvocationError.self) {
                try await hub.invoke("Throw", "no luck", returning: Int.self)
            }
            #expect(error?.message.contains("no luck") == true)
            await #expect(throws: HubInvocationError.self) {
                try await hub.invoke("NoSuchMethod", returning: Int.self)
            }
            // Many in flight at once, matched by invocation id.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let sum = try await hub.invoke("Add", index, 1, returning: Int.self)
                        #expect(sum == index + 1)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func sendAndOn(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        let inbox = Inbox<String>()
        // Method names match case-insensitively: the server calls "Heard".
        let setUp: @Sendable (HubClientConnection) -> Void = { hub in
            hub.on("heard") { (text: String, length: Int) in inbox.put("\(text)/\(length)") }
        }
        try await withClient(hubProtocol, setUp: setUp) { hub, _ in
            try await hub.send("Shout", "hey")
            #expect(await inbox.next() == "hey/3")
        }
    }

    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func serverStreamAndCancel(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        try await withClient(hubProtocol) { hub, _ in
            var items: [Int] = []
            for try await item in try await hub.stream("Counter", 5, of: Int.self) { items.append(item) }
            #expect(items == [0, 1, 2, 3, 4])

            let tag = "cancel-\(hubProtocol)"
            var seen = 0
            for try await _ in try await hub.stream("Endless", tag, of: Int.self) {
                seen += 1
                if seen == 3 { break }
            }
            #expect(seen == 3)
            // Breaking out sent CancelInvocation: the server stops iterating.
            #expect(await eventually { ClientTestHub.endedStreams.withLockedValue { $0.contains(tag) } })
            let value3 = try await hub.invoke("Add", 1, 1, returning: Int.self)
            #expect(value3 == 2)
        }
    }

    @Test func serverStreamError() async throws {
        try await withClient { hub, _ in
            var items: [Int] = []
            let error = await #expect(throws: HubInvocationError.self) {
                for try await item in try await hub.stream("Failing", of: Int.self) { items.append(item) }
            }
            #expect(items == [1])
            #expect(error?.message.contains("stream broke") == true)
        }
    }

    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func clientToServerStream(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        try await withClient(hubProtocol) { hub, _ in
            let numbers = AsyncStream<Int> { continuation in
                for number in 1...10 { continuation.yield(number) }
                continuation.finish()
            }
            let value4 = try await hub.invoke("Sum", uploading: numbers, returning: Int.self)
            #expect(value4 == 55)
        }
    }

    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func clientResultsAndGroups(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        let inbox = Inbox<String>()
        try await withClient(hubProtocol) { first, port in
            let second = HubClientConnection(
                url: "http://127.0.0.1:\(port)/hub", configuration: .init(hubProtocol: hubProtocol))
            second.on("Question") { (question: String) -> Int in question == "six times seven?" ? 42 : 0 }
            second.on("GroupMessage") { (text: String) in inbox.put(text) }
            try await second.withRunning { second in
                let secondId = try #require(second.connectionId)
                // Client results: the server asks `second` through a method `first` invokes.
                let value5 = try await first.invoke("Ask", secondId, "six times seven?", returning: Int.self)
                #expect(value5 == 42)
                // Groups: `second` joins, `first` (not a member) tells the group.
                try await second.invoke("Join", "room")
                try await first.invoke("TellGroup", "room", "hello room")
                #expect(await inbox.next() == "hello room")
            }
        }
    }

    @Test func clientResultHandlerError() async throws {
        struct Refusal: Error, CustomStringConvertible {
            var description: String { "I would rather not" }
        }
        try await withClient { first, port in
            let second = HubClientConnection(url: "http://127.0.0.1:\(port)/hub")
            second.on("Question") { (_: String) -> Int in throw Refusal() }
            try await second.withRunning { second in
                let secondId = try #require(second.connectionId)
                let error = await #expect(throws: HubInvocationError.self) {
                    try await first.invoke("Ask", secondId, "?", returning: Int.self)
                }
                #expect(error?.message.contains("I would rather not") == true)
            }
        }
    }

    @Test func clientResultWithoutHandlerIsAnError() async throws {
        try await withClient { first, port in
            try await withHubConnection(url: "http://127.0.0.1:\(port)/hub") { second in
                let secondId = try #require(second.connectionId)
                let error = await #expect(throws: HubInvocationError.self) {
                    try await first.invoke("Ask", secondId, "?", returning: Int.self)
                }
                #expect(error?.message.contains("didn't provide a result") == true)
            }
        }
    }
}

@Suite struct AuthenticationTests {
    static let endpoint = makeEndpoint(
        authenticator: .bearer { token in token == "good" ? HubUser(id: "ann") : nil })

    @Test func tokenAccepted() async throws {
        try await withTimeout(.seconds(30)) {
            try await withTestServer(Self.endpoint) { port in
                let configuration = HubClientConfiguration(accessTokenProvider: { "good" })
                let user = try await withHubConnection(
                    url: "http://127.0.0.1:\(port)/hub", configuration: configuration
                ) {
                    try await $0.invoke("WhoAmI", returning: String.self)
                }
                #expect(user == "ann")
            }
        }
    }

    @Test(arguments: [false, true])
    func tokenRefused(skipNegotiation: Bool) async throws {
        try await withTimeout(.seconds(30)) {
            try await withTestServer(Self.endpoint) { port in
                let configuration = HubClientConfiguration(
                    accessTokenProvider: { "bad" }, skipNegotiation: skipNegotiation)
                let error = await #expect(throws: HubClientError.self) {
                    try await withHubConnection(url: "http://127.0.0.1:\(port)/hub", configuration: configuration) {
                        _ in
                    }
                }
                #expect(error?.kind == .unauthorized)
                #expect(error?.status == 401)
            }
        }
    }

    @Test func skipNegotiation() async throws {
        try await withTimeout(.seconds(30)) {
            try await withTestServer(Self.endpoint) { port in
                let configuration = HubClientConfiguration(accessTokenProvider: { "good" }, skipNegotiation: true)
                try await withHubConnection(url: "ws://127.0.0.1:\(port)/hub", configuration: configuration) { hub in
                    #expect(hub.connectionId == nil)
                    let value6 = try await hub.invoke("WhoAmI", returning: String.self)
                    #expect(value6 == "ann")
                }
            }
        }
    }

    /// Negotiate at `/old` answers `url` + `accessToken` (the Azure SignalR redirect): the client negotiates
    /// again at `/hub` with that token, which the hub accepts.
    @Test func negotiateRedirect() async throws {
        try await withTimeout(.seconds(30)) {
            let port = NIOLockedValueBox(0)
            let redirect = HTTPRoute(path: "/old/negotiate", methods: [.post]) { request in
                guard request.request.headerFields[.authorization] == nil else {
                    return PlainHTTPResponse(status: .badRequest, text: "no token expected here\n")
                }
                let url = "http://127.0.0.1:\(port.withLockedValue { $0 })/hub"
                return PlainHTTPResponse(status: .ok, text: #"{"url":"\#(url)","accessToken":"good"}"#)
            }
            try await withTestServer(Self.endpoint, extraRoutes: [redirect]) { serverPort in
                port.withLockedValue { $0 = serverPort }
                let user = try await withHubConnection(url: "http://127.0.0.1:\(serverPort)/old") {
                    try await $0.invoke("WhoAmI", returning: String.self)
                }
                #expect(user == "ann")
            }
        }
    }

    /// `https://`: negotiate over TLS (the client's own POST) and `wss://`, trusting a throw-away certificate.
    @Test(.enabled(if: TestCertificate.isAvailable)) func overTLS() async throws {
        let certificate = try TestCertificate.make()
        let serverTLS = try certificate.serverTLS()
        let clientWebSocket = try certificate.clientConfiguration()
        try await withTimeout(.seconds(30)) {
            try await withTestServer(Self.endpoint, tls: serverTLS) { port in
                let configuration = HubClientConfiguration(
                    hubProtocol: .messagePack, accessTokenProvider: { "good" }, webSocket: clientWebSocket)
                let user = try await withHubConnection(
                    url: "https://localhost:\(port)/hub", configuration: configuration
                ) { hub in
                    #expect(hub.connectionId != nil)
                    return try await hub.invoke("WhoAmI", returning: String.self)
                }
                #expect(user == "ann")
            }
        }
    }

    @Test func unreachableServer() async throws {
        let error = await #expect(throws: HubClientError.self) {
            try await withHubConnection(url: "http://127.0.0.1:1/hub") { _ in }
        }
        #expect(error?.kind == .negotiateFailed)
    }
}

@Suite(.serialized) struct ReconnectTests {
    static let shortDelays: [Duration] = [.milliseconds(100), .milliseconds(300), .seconds(1), .seconds(3)]

    /// A server that stops and comes back on the same port: the client fails its pending invocation, reports
    /// reconnecting, reconnects within the delay list, and works again.
    @Test func serverRestart() async throws {
        try await withTimeout(.seconds(40)) {
            let port = try await withTestServer(makeEndpoint()) { $0 }
            let hub = HubClientConnection(
                url: "http://127.0.0.1:\(port)/hub", configuration: .init(reconnectDelays: Self.shortDelays))
            let events = Inbox<HubClientEvent>()
            let first = BackgroundServer()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.run(port: port, makeEndpoint()) }
                #expect(await first.ready.next() == port)
                group.addTask { try await hub.run() }
                group.addTask { for await event in hub.events { events.put(event) } }
                try await hub.waitUntilConnected()
                let firstId = hub.connectionId
                let three = try await hub.invoke("Add", 1, 2, returning: Int.self)
                #expect(three == 3)
                first.stop()
                guard case .reconnecting(let error)? = await events.next() else {
                    Issue.record("no reconnecting event")
                    return
                }
                #expect(error.kind == .connectionLost || error.kind == .serverClosed)
                let notConnected = await #expect(throws: HubClientError.self) {
                    try await hub.invoke("Add", 1, 2, returning: Int.self)
                }
                #expect(notConnected?.kind == .notConnected)
                let started = ContinuousClock.now
                try await withTestServer(port: port, makeEndpoint()) { _ in
                    let next = await events.next(timeout: .seconds(10))
                    guard case .reconnected(let newId)? = next else {
                        Issue.record("expected reconnected, got \(String(describing: next))")
                        return
                    }
                    #expect(newId != nil && newId != firstId)
                    let four = try await hub.invoke("Add", 2, 2, returning: Int.self)
                    #expect(four == 4)
                }
                // Within the injected delays (0.1 + 0.3 + 1 + 3 s), not SignalR's 42 s.
                #expect(ContinuousClock.now - started < .seconds(5))
                group.cancelAll()
            }
        }
    }

    /// Reconnection gives up after the last delay and reports closed with the last error.
    @Test func givesUpAfterTheDelays() async throws {
        try await withTimeout(.seconds(30)) {
            let port = try await withTestServer(makeEndpoint()) { $0 }
            let hub = HubClientConnection(
                url: "http://127.0.0.1:\(port)/hub",
                configuration: .init(reconnectDelays: [.milliseconds(50), .milliseconds(50)]))
            var events = hub.events.makeAsyncIterator()
            let server = BackgroundServer()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run(port: port, makeEndpoint()) }
                #expect(await server.ready.next() == port)
                group.addTask { try await hub.run() }
                try await hub.waitUntilConnected()
                server.stop()
                // run() returns once reconnection gave up.
                try await group.waitForAll()
            }
            guard case .reconnecting? = await events.next() else {
                Issue.record("no reconnecting event")
                return
            }
            guard case .closed(let error?)? = await events.next() else {
                Issue.record("no closed event with an error")
                return
            }
            #expect(error.kind == .negotiateFailed)
            #expect(!hub.isConnected)
        }
    }

    /// A Close message with `allowReconnect` reconnects; without it the connection closes with the server's error.
    @Test func serverCloseMessage() async throws {
        try await withTimeout(.seconds(30)) {
            let endpoint = makeEndpoint()
            try await withTestServer(endpoint) { port in
                let hub = HubClientConnection(
                    url: "http://127.0.0.1:\(port)/hub", configuration: .init(reconnectDelays: Self.shortDelays))
                var events = hub.events.makeAsyncIterator()
                try await hub.withRunning { hub in
                    let firstId = hub.connectionId
                    await endpoint.closeAll(error: "maintenance", allowReconnect: true, gracePeriod: .seconds(1))
                    guard case .reconnecting(let error)? = await events.next() else {
                        Issue.record("no reconnecting event")
                        return
                    }
                    #expect(error.kind == .serverClosed)
                    #expect(error.detail == "maintenance")
                    guard case .reconnected(let newId)? = await events.next() else {
                        Issue.record("no reconnected event")
                        return
                    }
                    #expect(newId != firstId)
                    let value9 = try await hub.invoke("Echo", "back", returning: String.self)
                    #expect(value9 == "back")

                    await endpoint.closeAll(error: "go away", allowReconnect: false, gracePeriod: .seconds(1))
                    guard case .closed(let final?)? = await events.next() else {
                        Issue.record("no closed event")
                        return
                    }
                    #expect(final.kind == .serverClosed)
                    #expect(final.detail == "go away")
                    #expect(!hub.isConnected)
                    let notConnected = await #expect(throws: HubClientError.self) {
                        try await hub.invoke("Echo", "x", returning: String.self)
                    }
                    #expect(notConnected?.kind == .notConnected)
                }
            }
        }
    }

    /// Without automatic reconnection a lost connection closes at once.
    @Test func noReconnectByDefault() async throws {
        try await withTimeout(.seconds(30)) {
            let endpoint = makeEndpoint()
            try await withTestServer(endpoint) { port in
                let hub = HubClientConnection(url: "http://127.0.0.1:\(port)/hub")
                var events = hub.events.makeAsyncIterator()
                try await hub.withRunning { hub in
                    async let pending = hub.invoke("Sleep", 5000, returning: Int.self)
                    try await Task.sleep(for: .milliseconds(200))
                    await endpoint.closeAll(error: nil, allowReconnect: true, gracePeriod: .seconds(1))
                    guard case .closed(let error?)? = await events.next() else {
                        Issue.record("no closed event")
                        return
                    }
                    #expect(error.kind == .serverClosed)
                    // The invocation in flight fails at once, with the reason.
                    do {
                        _ = try await pending
                        Issue.record("the pending invocation did not fail")
                    } catch let error as HubClientError {
                        #expect(error.kind == .connectionLost)
                    }
                }
            }
        }
    }
}

@Suite struct KeepAliveTests {
    /// A server that answers the handshake and then stays silent: the client closes after the server timeout.
    @Test func serverTimeoutIsDetected() async throws {
        try await withTimeout(.seconds(30)) {
            let endpoint = makeEndpoint()
            try await withTestServer(endpoint) { port in
                // The server's own keep-alive is 15 s: a 300 ms client timeout fires first.
                let configuration = HubClientConfiguration(
                    keepAliveInterval: .milliseconds(100), serverTimeout: .milliseconds(300))
                let hub = HubClientConnection(url: "http://127.0.0.1:\(port)/hub", configuration: configuration)
                var events = hub.events.makeAsyncIterator()
                try await hub.withRunning { _ in
                    guard case .closed(let error?)? = await events.next() else {
                        Issue.record("no closed event")
                        return
                    }
                    #expect(error.kind == .serverTimeout)
                }
            }
        }
    }

    /// The client's Pings keep a server with a 400 ms client timeout from closing the connection; with Pings
    /// every 10 s it closes.
    @Test(arguments: [true, false])
    func pingsKeepTheConnection(pinging: Bool) async throws {
        try await withTimeout(.seconds(30)) {
            var serverConfiguration = HubConfiguration()
            serverConfiguration.clientTimeoutInterval = .milliseconds(400)
            serverConfiguration.keepAliveInterval = .milliseconds(100)
            try await withTestServer(makeEndpoint(configuration: serverConfiguration)) { port in
                let configuration = HubClientConfiguration(
                    keepAliveInterval: pinging ? .milliseconds(100) : .seconds(10))
                let hub = HubClientConnection(url: "http://127.0.0.1:\(port)/hub", configuration: configuration)
                try await hub.withRunning { hub in
                    try await Task.sleep(for: .milliseconds(1200))
                    #expect(hub.isConnected == pinging)
                }
            }
        }
    }
}

/// The client's queues are bounded: a consumer that falls behind gets `.slowConsumer`, nothing is dropped silently.
@Suite struct SlowConsumerTests {
    @Test func streamReaderTooFarBehindEndsTheStreamAndCancelsIt() async throws {
        try await withTimeout(.seconds(30)) {
            try await withTestServer(makeEndpoint()) { port in
                var configuration = HubClientConfiguration()
                configuration.streamBufferLimit = 5
                let hub = HubClientConnection(url: "http://127.0.0.1:\(port)/hub", configuration: configuration)
                try await hub.withRunning { hub in
                    try await hub.waitUntilConnected()
                    let tag = "slow-reader"
                    let items = try await hub.stream("Endless", tag, of: Int.self)
                    // Not reading: the sixth item overflows, the stream is cancelled on the server.
                    #expect(await eventually { ClientTestHub.endedStreams.withLockedValue { $0.contains(tag) } })
                    var received: [Int] = []
                    do {
                        for try await item in items { received.append(item) }
                        Issue.record("the stream ended without an error")
                    } catch let error as HubClientError {
                        #expect(error.kind == .slowConsumer)
                    }
                    #expect(received == [0, 1, 2, 3, 4])
                    // The connection is still up.
                    #expect(try await hub.invoke("Add", 2, 3, returning: Int.self) == 5)
                }
            }
        }
    }

    @Test func handlersTooFarBehindEndTheConnection() async throws {
        try await withTimeout(.seconds(30)) {
            try await withTestServer(makeEndpoint()) { port in
                var configuration = HubClientConfiguration()
                configuration.invocationQueueLimit = 2
                let hub = HubClientConnection(url: "http://127.0.0.1:\(port)/hub", configuration: configuration)
                hub.on("Heard") { (_: String, _: Int) in try await Task.sleep(for: .seconds(60)) }
                var events = hub.events.makeAsyncIterator()
                try await hub.withRunning { hub in
                    try await hub.waitUntilConnected()
                    // Each Shout makes the server invoke Heard on us; the first handler never finishes.
                    for index in 0..<10 { try? await hub.send("Shout", "message \(index)") }
                    guard case .closed(let error?)? = await events.next() else {
                        Issue.record("no closed event")
                        return
                    }
                    #expect(error.kind == .slowConsumer)
                }
            }
        }
    }
}
