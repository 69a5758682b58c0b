import HubProtocol
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

@testable import Hubs

/// The hub the Swift tests talk to.
struct TestHub: Hub {
    let context: HubContext
    init(context: HubContext) { self.context = context }

    static let disconnects = NIOLockedValueBox<[String: String]>([:])
    /// Streams of `Endless` that ended by cancellation, by tag.
    static let cancelledStreams = NIOLockedValueBox<Set<String>>([])

    static func registerMethods(_ methods: inout HubMethods<TestHub>) {
        methods.on("Echo") { (_: TestHub, text: String) -> String in text }
        methods.on("Add") { (_: TestHub, a: Int, b: Int) -> Int in a + b }
        methods.on("Throw") { (_: TestHub, message: String) -> Int in throw HubError(message) }
        methods.on("Void") { (_: TestHub) in }
        methods.on("Sleep") { (_: TestHub, ms: Int) -> Int in
            try await Task.sleep(for: .milliseconds(ms))
            return ms
        }
        methods.on("WhoAmI") { (hub: TestHub) -> String in hub.context.user?.id ?? "" }
        methods.on("Join") { (hub: TestHub, group: String) in
            try await hub.context.groups.add(hub.context.connectionId, to: group)
        }
        methods.on("Sum") { (_: TestHub, numbers: HubUploadStream<Int>) -> Int in
            var total = 0
            for try await number in numbers { total += number }
            return total
        }
        methods.stream("Counter") { (_: TestHub, count: Int, delayMs: Int) in
            AsyncStreamCounter(count: count, delay: .milliseconds(delayMs))
        }
        methods.on("Ask") { (hub: TestHub, connectionId: String, timeoutMs: Int) -> Int in
            try await hub.context.clients.client(connectionId).invoke(
                "Question", "six times seven?", returning: Int.self, timeout: .milliseconds(timeoutMs))
        }
        methods.on("AskCaller") { (hub: TestHub) -> Int in
            try await hub.context.clients.caller.invoke("Question", "?", returning: Int.self)
        }
        methods.stream("Endless") { (_: TestHub, tag: String) in
            EndlessStream(tag: tag)
        }
        methods.on("Remember") { (hub: TestHub, value: String) in
            hub.context.connection.setItem("remembered", value)
        }
        methods.on("Recall") { (hub: TestHub) -> String in
            hub.context.connection.item("remembered", as: String.self) ?? "nothing"
        }
        methods.on("AdminOnly") { (_: TestHub) -> String in "secret" }
        methods.authorize("AdminOnly", .claim("role", "admin"))
        methods.stream("AnnsStream") { (_: TestHub) in AsyncStreamCounter(count: 1, delay: .zero) }
        methods.authorize("AnnsStream", .users("ann"))
        methods.on("Blob") { (hub: TestHub, count: Int, size: Int) in
            let blob = String(repeating: "x", count: size)
            for _ in 0..<count { try await hub.context.clients.caller.send("Blob", blob) }
        }
        methods.on("GroupBlob") { (hub: TestHub, group: String, count: Int, size: Int, everyMs: Int) in
            let blob = String(repeating: "x", count: size)
            for _ in 0..<count {
                try await hub.context.clients.group(group).send("Blob", blob)
                try await Task.sleep(for: .milliseconds(everyMs))
            }
        }
    }

    func onConnected() async throws {
        if context.user?.id == "refused" { throw HubError("not welcome") }
        try await context.clients.caller.send("Welcome", context.connectionId.count)
    }

    func onDisconnected(error: (any Error)?) async {
        let text = error.map { "\($0)" } ?? "none"
        Self.disconnects.withLockedValue { $0[context.connectionId] = text }
    }
}

struct AsyncStreamCounter: AsyncSequence, Sendable {
    let count: Int
    let delay: Duration

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        let delay: Duration
        var next = 0

        mutating func next() async throws -> Int? {
            guard next < count else { return nil }
            if next > 0 { try await Task.sleep(for: delay) }
            defer { next += 1 }
            return next
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, delay: delay) }
}

/// 0, 1, 2 … every 10 ms, without end: only cancellation stops its iteration, and when the iteration is over (the
/// iterator released) its tag goes into ``TestHub/cancelledStreams``.
struct EndlessStream: AsyncSequence, Sendable {
    let tag: String

    final class Tracker: Sendable {
        let tag: String
        init(tag: String) { self.tag = tag }
        deinit {
            let tag = self.tag
            TestHub.cancelledStreams.withLockedValue { _ = $0.insert(tag) }
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

/// Runs a server with a TestHub at `/hub` during `body`.
func withHub(
    configuration: HubConfiguration = .init(),
    authenticator: HubAuthenticator = .anonymous,
    _ body: @escaping @Sendable (HubEndpoint<TestHub>, Int) async throws -> Void
) async throws {
    let endpoint = HubEndpoint(
        path: "/hub", hub: TestHub.self, configuration: configuration, authenticator: authenticator)
    var serverConfiguration = Server.Configuration(port: 0)
    serverConfiguration.shutdownGracePeriod = .seconds(1)
    let server = Server(
        configuration: serverConfiguration, routes: [endpoint.webSocketRoute], httpRoutes: [endpoint.negotiateRoute])
    try await withTimeout(.seconds(30)) {
        try await server.withRunning { server in try await body(endpoint, server.port) }
    }
}

/// Sends a raw HTTP request and returns the response (nil if none came).
func httpRequest(_ port: Int, _ head: String) async throws -> RawResponse? {
    let client = try await RawTestClient.connect(port: port)
    try await client.send(head)
    let bytes = await client.wait(timeout: .seconds(5)) { bytes in
        guard let response = RawResponse(bytes) else { return false }
        let length = Int(response.header("Content-Length") ?? "0") ?? 0
        return response.rest.count >= length
    }
    await client.close()
    return RawResponse(bytes)
}

func negotiate(_ port: Int, query: String = "", headers: [String] = []) async throws -> RawResponse? {
    let lines = ["POST /hub/negotiate\(query) HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 0"] + headers
    return try await httpRequest(port, lines.joined(separator: "\r\n") + "\r\n\r\n")
}

/// The status of a WebSocket upgrade request to `target`.
func upgradeStatus(_ port: Int, _ target: String, extra: [String] = []) async throws -> Int? {
    let client = try await RawTestClient.connect(port: port)
    try await client.send(upgradeRequest(path: target, extra: extra))
    let status = await client.waitForResponse()?.status
    await client.close()
    return status
}

/// A hub client over our WebSocket client: frames in, decoded hub messages out.
struct HubTestClient {
    let webSocket: WebSocket
    var iterator: WebSocketInboundMessages.AsyncIterator
    var format: HubWireFormat
    var pending: [HubMessage] = []

    /// Connects to `/hub` + `query` and, unless `handshake` is nil, sends it and expects `{}` + 0x1E.
    static func connect(
        _ port: Int, query: String = "", protocol name: String = "json", version: Int = 1,
        handshake: Bool = true
    ) async throws -> HubTestClient {
        let webSocket = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/hub\(query)")
        var client = HubTestClient(
            webSocket: webSocket, iterator: webSocket.messages.makeAsyncIterator(),
            format: HubWireFormat(protocolName: name) ?? .json)
        if handshake {
            try await client.sendText(#"{"protocol":"\#(name)","version":\#(version)}"# + "\u{1e}")
            let response = try #require(await client.nextFrame())
            #expect(Array(response.payload.readableBytesView) == [0x7B, 0x7D, 0x1E])
            #expect(response.kind == (name == "json" ? .text : .binary))
            // TestHub.onConnected greets every connection first.
            guard case .invocation(let welcome)? = try await client.next(), welcome.target == "Welcome" else {
                Issue.record("no Welcome from onConnected")
                return client
            }
        }
        return client
    }

    func sendText(_ text: String) async throws {
        try await webSocket.send(text: text)
    }

    func sendBinary(_ bytes: [UInt8]) async throws {
        try await webSocket.send(binary: ByteBuffer(bytes: bytes))
    }

    /// Encodes and sends messages in one frame.
    func send(_ messages: HubMessage...) async throws {
        var bytes: [UInt8] = []
        for message in messages { bytes += try format.encode(message) }
        if format == .json {
            try await sendText(String(decoding: bytes, as: UTF8.self))
        } else {
            try await sendBinary(bytes)
        }
    }

    mutating func nextFrame() async -> WebSocketMessage? {
        await iterator.next()
    }

    /// The next hub message other than Ping; nil when the connection closed.
    mutating func next(skippingPings: Bool = true) async throws -> HubMessage? {
        while true {
            if !pending.isEmpty {
                let message = pending.removeFirst()
                if skippingPings, case .ping = message { continue }
                return message
            }
            guard let frame = await iterator.next() else { return nil }
            pending = try format.decode(
                frame: Array(frame.payload.readableBytesView), limits: .default)
        }
    }

    func close() async {
        await webSocket.close()
    }
}

extension HubWireFormat {
    func decode(frame: [UInt8], limits: HubProtocolLimits) throws(HubProtocolError) -> [HubMessage] {
        var messages: [HubMessage] = []
        try decode(frame: frame, limits: limits, into: &messages)
        return messages
    }
}

func invocation(_ id: String?, _ target: String, _ arguments: [JSONValue], streamIds: [String] = []) -> HubMessage {
    .invocation(.init(invocationId: id, target: target, arguments: arguments.map { .json($0) }, streamIds: streamIds))
}

/// The result or error of a Completion, for #expect.
func outcome(_ message: HubMessage?) -> String {
    guard case .completion(let completion)? = message else { return "not a completion: \(String(describing: message))" }
    switch completion.result {
    case .void: return "void"
    case .error(let error): return "error: \(error)"
    case .value(let value):
        guard let json = try? value.jsonValue() else { return "value?" }
        return "\(json)"
    }
}
