import HubClient
import HubProtocol
import Hubs
import NIOConcurrencyHelpers
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer

/// The hub the client tests talk to.
struct ClientTestHub: Hub {
    let context: HubContext

    /// Tags of `Endless` streams whose iteration ended (the server saw the CancelInvocation).
    static let endedStreams = NIOLockedValueBox<Set<String>>([])

    static func registerMethods(_ methods: inout HubMethods<ClientTestHub>) {
        methods.on("Echo") { (_: ClientTestHub, text: String) -> String in text }
        methods.on("Add") { (_: ClientTestHub, a: Int, b: Int) -> Int in a + b }
        methods.on("Throw") { (_: ClientTestHub, message: String) -> Int in throw HubError(message) }
        methods.on("Nothing") { (_: ClientTestHub) in }
        methods.on("Sleep") { (_: ClientTestHub, ms: Int) -> Int in
            try await Task.sleep(for: .milliseconds(ms))
            return ms
        }
        methods.on("WhoAmI") { (hub: ClientTestHub) -> String in hub.context.user?.id ?? "" }
        methods.on("Shout") { (hub: ClientTestHub, text: String) in
            try await hub.context.clients.caller.send("Heard", text, text.count)
        }
        methods.on("Join") { (hub: ClientTestHub, group: String) in
            try await hub.context.groups.add(hub.context.connectionId, to: group)
        }
        methods.on("TellGroup") { (hub: ClientTestHub, group: String, text: String) in
            try await hub.context.clients.group(group).send("GroupMessage", text)
        }
        methods.on("Sum") { (_: ClientTestHub, numbers: HubUploadStream<Int>) -> Int in
            var total = 0
            for try await number in numbers { total += number }
            return total
        }
        methods.on("Ask") { (hub: ClientTestHub, connectionId: String, question: String) -> Int in
            try await hub.context.clients.client(connectionId).invoke(
                "Question", question, returning: Int.self, timeout: .seconds(5))
        }
        methods.stream("Counter") { (_: ClientTestHub, count: Int) in Counter(count: count) }
        methods.stream("Failing") { (_: ClientTestHub) in
            AsyncThrowingStream<Int, any Error> { continuation in
                continuation.yield(1)
                continuation.finish(throwing: HubError("stream broke"))
            }
        }
        methods.stream("Endless") { (_: ClientTestHub, tag: String) in Endless(tag: tag) }
    }
}

struct Counter: AsyncSequence, Sendable {
    let count: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        var next = 0

        mutating func next() async throws -> Int? {
            guard next < count else { return nil }
            defer { next += 1 }
            return next
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count) }
}

/// 0, 1, 2 … every 10 ms until cancelled; its tag goes into ``ClientTestHub/endedStreams`` when released.
struct Endless: AsyncSequence, Sendable {
    let tag: String

    final class Tracker: Sendable {
        let tag: String
        init(tag: String) { self.tag = tag }
        deinit {
            let tag = self.tag
            ClientTestHub.endedStreams.withLockedValue { _ = $0.insert(tag) }
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let tracker: Tracker
        var next = 0

        mutating func next() async throws -> Int? {
            try await Task.sleep(for: .milliseconds(10))
            defer { next += 1 }
            return next
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(tracker: Tracker(tag: tag)) }
}

func makeEndpoint(
    configuration: HubConfiguration = .init(), authenticator: HubAuthenticator = .anonymous
) -> HubEndpoint<ClientTestHub> {
    HubEndpoint(path: "/hub", hub: ClientTestHub.self, configuration: configuration, authenticator: authenticator)
}

/// Runs a server with `endpoint` on 127.0.0.1 (`port`, 0 for any) during `body`, which gets the port.
func withTestServer<Result: Sendable>(
    port: Int = 0, _ endpoint: HubEndpoint<ClientTestHub>, extraRoutes: [HTTPRoute] = [],
    tls: TLSConfiguration? = nil, _ body: @escaping @Sendable (Int) async throws -> Result
) async throws -> Result {
    var configuration = Server.Configuration(host: "127.0.0.1", port: port, tls: tls)
    configuration.shutdownGracePeriod = .seconds(1)
    let server = Server(
        configuration: configuration, routes: [endpoint.webSocketRoute],
        httpRoutes: [endpoint.negotiateRoute] + extraRoutes)
    return try await server.withRunning { server in try await body(server.port) }
}

/// Runs a server and one client connected to it during `body`.
func withClient<Result: Sendable>(
    _ hubProtocol: HubClientConfiguration.HubProtocolChoice = .json,
    endpoint: HubEndpoint<ClientTestHub> = makeEndpoint(),
    setUp: @escaping @Sendable (HubClientConnection) -> Void = { _ in },
    _ body: @escaping @Sendable (HubClientConnection, Int) async throws -> Result
) async throws -> Result {
    try await withTimeout(.seconds(30)) {
        try await withTestServer(endpoint) { port in
            try await withHubConnection(
                url: "http://127.0.0.1:\(port)/hub", configuration: .init(hubProtocol: hubProtocol), setUp: setUp
            ) { connection in
                try await body(connection, port)
            }
        }
    }
}

/// Collects values handed to handlers, for `#expect`.
final class Inbox<Value: Sendable>: Sendable {
    private let values = NIOLockedValueBox<[Value]>([])

    func put(_ value: Value) { values.withLockedValue { $0.append(value) } }

    /// The oldest value not taken yet, waiting up to `timeout` for one; nil when none came.
    func next(timeout: Duration = .seconds(5)) async -> Value? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let value = values.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
            if let value { return value }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}

/// Waits up to `timeout` for `condition`.
func eventually(timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A test server run in a child task, so a client can outlive it: ``run(port:_:)`` serves until ``stop()``.
final class BackgroundServer: Sendable {
    /// The port, once listening.
    let ready = Inbox<Int>()
    private let stopSignal: AsyncStream<Void>
    private let stopper: AsyncStream<Void>.Continuation

    init() {
        (stopSignal, stopper) = AsyncStream.makeStream(of: Void.self)
    }

    func run(port: Int, _ endpoint: HubEndpoint<ClientTestHub>) async throws {
        let stopSignal = self.stopSignal
        let ready = self.ready
        try await withTestServer(port: port, endpoint) { port in
            ready.put(port)
            for await _ in stopSignal {}
        }
    }

    func stop() { stopper.finish() }
}
