import ArgumentParser
import HubProtocol
import Hubs
import RedisBackplane
import RedisClient
import WebSocketServer

/// The chat's client contract: every method the hub calls on its clients, with its argument types (and result),
/// declared once. The hub's calls below are checked against it by the compiler; a Swift client registers its
/// handlers with the same descriptors (`connection.on(ChatClient.receiveMessage) { user, message in … }`).
enum ChatClient {
    /// A chat message, to everybody, to the others, or privately to one user.
    static let receiveMessage = ClientMethod<(_ user: String, _ message: String) -> Void>("ReceiveMessage")
    /// `user` joined `room` (to the room's members, the newcomer included).
    static let userJoined = ClientMethod<(_ room: String, _ user: String) -> Void>("UserJoined")
    /// `user` left `room` (to the remaining members).
    static let userLeft = ClientMethod<(_ room: String, _ user: String) -> Void>("UserLeft")
    /// A message to a room.
    static let receiveRoomMessage = ClientMethod<(_ room: String, _ user: String, _ message: String) -> Void>(
        "ReceiveRoomMessage")
    /// A connection ended (to the others).
    static let userDisconnected = ClientMethod<(_ user: String) -> Void>("UserDisconnected")
    /// Client results: the client answers a question.
    static let getAnswer = ClientMethod<(_ question: String) -> String>("GetAnswer")
    /// The total of an uploaded stream (test method `Sum`).
    static let sumResult = ClientMethod<(_ total: Int) -> Void>("SumResult")
}

/// The chat hub: the ASP.NET Core SignalR tutorial's `ChatHub`, rooms, and a few methods the interop tests call.
struct ChatHub: Hub {
    let context: HubContext

    init(context: HubContext) {
        self.context = context
    }

    /// The name others see: the user id when authenticated, else the connection id.
    var sender: String { context.user?.id ?? context.connectionId }

    static func registerMethods(_ methods: inout HubMethods<ChatHub>) {
        // Chat.
        methods.on("SendMessage") { (hub: ChatHub, user: String, message: String) in
            try await hub.context.clients.all.send(ChatClient.receiveMessage, user, message)
        }
        methods.on("JoinRoom") { (hub: ChatHub, room: String) in
            try await hub.context.groups.add(hub.context.connectionId, to: room)
            try await hub.context.clients.group(room).send(ChatClient.userJoined, room, hub.sender)
        }
        methods.on("LeaveRoom") { (hub: ChatHub, room: String) in
            try await hub.context.groups.remove(hub.context.connectionId, from: room)
            try await hub.context.clients.group(room).send(ChatClient.userLeft, room, hub.sender)
        }
        // Group membership of any connection, on this server or (with --redis) another one.
        methods.on("AddToRoom") { (hub: ChatHub, connectionId: String, room: String) in
            try await hub.context.groups.add(connectionId, to: room)
        }
        methods.on("RemoveFromRoom") { (hub: ChatHub, connectionId: String, room: String) in
            try await hub.context.groups.remove(connectionId, from: room)
        }
        methods.on("SendToRoom") { (hub: ChatHub, room: String, message: String) in
            try await hub.context.clients.group(room).send(ChatClient.receiveRoomMessage, room, hub.sender, message)
        }
        methods.on("SendToOthersInRoom") { (hub: ChatHub, room: String, message: String) in
            try await hub.context.clients.othersInGroup(room).send(
                ChatClient.receiveRoomMessage, room, hub.sender, message)
        }
        methods.on("SendToUser") { (hub: ChatHub, user: String, message: String) in
            try await hub.context.clients.user(user).send(ChatClient.receiveMessage, hub.sender, message)
        }
        // [Authorize]-style rule: only authenticated users may send private messages.
        methods.authorize("SendToUser", .authenticated)
        methods.on("SendToOthers") { (hub: ChatHub, message: String) in
            try await hub.context.clients.others.send(ChatClient.receiveMessage, hub.sender, message)
        }
        methods.on("WhoAmI") { (hub: ChatHub) -> String in
            hub.context.user?.id ?? ""
        }
        methods.on("ConnectionId") { (hub: ChatHub) -> String in
            hub.context.connectionId
        }
        // Test methods.
        methods.on("Echo") { (_: ChatHub, text: String) -> String in text }
        methods.on("Add") { (_: ChatHub, a: Int, b: Int) -> Int in a + b }
        methods.on("Throw") { (_: ChatHub, message: String) -> Int in throw HubError(message) }
        methods.on("Fail") { (_: ChatHub) -> Int in throw ChatFailure() }
        // Client results: asks another connection's GetAnswer(question) and returns its answer.
        methods.on("AskClient") { (hub: ChatHub, connectionId: String, question: String) -> String in
            try await hub.context.clients.client(connectionId).invoke(
                ChatClient.getAnswer, question, timeout: .seconds(5))
        }
        // Refused at once: a hub method cannot wait for its own caller's result.
        methods.on("AskCaller") { (hub: ChatHub, question: String) -> String in
            try await hub.context.clients.caller.invoke(ChatClient.getAnswer, question)
        }
        // Closes the caller's connection with a Close message carrying an error.
        methods.on("Kick") { (hub: ChatHub) in hub.context.connection.abort() }
        // Also sends SumResult(total) to the caller: clients that stream without an invocation id get no Completion.
        methods.on("Sum") { (hub: ChatHub, numbers: HubUploadStream<Int>) -> Int in
            var total = 0
            for try await number in numbers { total += number }
            try await hub.context.clients.caller.send(ChatClient.sumResult, total)
            return total
        }
        methods.stream("Counter") { (_: ChatHub, count: Int, delayMs: Int) in
            Counter(count: count, delay: .milliseconds(max(0, delayMs)))
        }
    }

    func onDisconnected(error: (any Error)?) async {
        try? await context.clients.others.send(ChatClient.userDisconnected, sender)
    }
}

struct ChatFailure: Error {}

/// 0, 1, … count-1, each after `delay` (the first one too).
struct Counter: AsyncSequence, Sendable {
    let count: Int
    let delay: Duration

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        let delay: Duration
        var next = 0

        mutating func next() async throws -> Int? {
            guard next < count else { return nil }
            try await Task.sleep(for: delay)
            defer { next += 1 }
            return next
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, delay: delay) }
}

@main
struct HubChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub-chat",
        abstract: "A SignalR chat hub at /chat (negotiate at POST /chat/negotiate, WebSockets, JSON and MessagePack).",
        discussion: """
            Methods: SendMessage(user, message) → all ReceiveMessage(user, message); JoinRoom(room) → the room's \
            UserJoined(room, sender); LeaveRoom(room); SendToRoom(room, message) → the room's \
            ReceiveRoomMessage(room, sender, message); SendToUser(user, message) (authenticated users only); \
            SendToOthers(message); WhoAmI(); ConnectionId(); AddToRoom(connectionId, room) and \
            RemoveFromRoom(connectionId, room) (any connection, on another server too with --redis); \
            Echo(text); Add(a, b); Counter(count, delayMs) (stream); Sum(stream of numbers); Throw(message); Fail(); \
            Kick() (the server closes the caller's connection with an error Close message); \
            AskClient(connectionId, question) (client results: returns that client's GetAnswer(question)).
            With --token TOKEN=USER (repeatable) a bearer token (Authorization header or access_token query \
            parameter) authenticates as USER; an unknown token is refused with 401, and so is no token with \
            --require-auth.
            With --redis HOST:PORT several hub-chat processes share their clients through Redis pub/sub (give each \
            a distinct --server-id, and the same --redis-prefix): broadcasts, rooms and users reach every server.
            """
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one; the chosen port is logged).")
    var port = 5000

    @Option(name: .customLong("token"), help: "A bearer token and its user, as TOKEN=USER (repeatable).")
    var tokens: [String] = []

    @Flag(help: "Refuse connections without a bearer token (401).")
    var requireAuth = false

    @Option(help: "Milliseconds between keep-alive pings.")
    var keepAliveMs = 15_000

    @Option(help: "Milliseconds of client silence before the server closes the connection.")
    var clientTimeoutMs = 30_000

    @Option(help: "The per-connection outbound buffer, in bytes.")
    var maxBufferedBytes = 1 << 20

    @Option(help: "Milliseconds a long poll waits for a message before it answers 200 empty.")
    var longPollTimeoutMs = 90_000

    @Option(help: "The transports served, comma-separated: WebSockets,ServerSentEvents,LongPolling.")
    var transports = "WebSockets,ServerSentEvents,LongPolling"

    @Flag(help: "Also accept HTTP/2 with prior knowledge (h2c): negotiate and the hub's WebSocket (RFC 8441).")
    var h2c = false

    @Flag(help: "Allow stateful reconnect (WebSockets, negotiate version 1, handshake version 2: Ack/Sequence).")
    var statefulReconnect = false

    @Option(help: "Share clients with other hub-chat processes through the Redis at HOST:PORT (pub/sub).")
    var redis: String?

    @Option(help: "The first part of every Redis channel name (the same on every server of one chat).")
    var redisPrefix = "hub-chat"

    @Option(help: "This server's identity among the servers on one Redis (default: a random one).")
    var serverId: String?

    @Option(help: "Milliseconds a room change of a connection on another server waits for its acknowledgement.")
    var backplaneTimeoutMs = 5_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535") }
        for token in tokens where !token.contains("=") { throw ValidationError("--token takes TOKEN=USER") }
        for name in transports.split(separator: ",") where HubTransport(rawValue: String(name)) == nil {
            throw ValidationError("unknown transport '\(name)'")
        }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown --log-level '\(logLevel)'") }
        if let redis, Self.hostAndPort(redis) == nil { throw ValidationError("--redis takes HOST:PORT") }
    }

    /// `HOST:PORT` (`[v6]:PORT` too).
    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        var logger = Logger(label: "hub-chat")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var users: [String: String] = [:]
        for token in tokens {
            let parts = token.split(separator: "=", maxSplits: 1)
            users[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let requireAuth = self.requireAuth
        let table = users
        let authenticator = HubAuthenticator { request in
            guard let token = request.bearerToken else { return requireAuth ? .rejected : .anonymous }
            guard let user = table[token] else { return .rejected }
            return .authenticated(HubUser(id: user))
        }
        var hubConfiguration = HubConfiguration(
            keepAliveInterval: .milliseconds(keepAliveMs),
            clientTimeoutInterval: .milliseconds(clientTimeoutMs),
            maximumBufferedBytes: maxBufferedBytes
        )
        hubConfiguration.logger = logger
        hubConfiguration.backplaneGroupChangeTimeout = .milliseconds(backplaneTimeoutMs)
        hubConfiguration.longPollingTimeout = .milliseconds(longPollTimeoutMs)
        hubConfiguration.allowStatefulReconnects = statefulReconnect
        hubConfiguration.transports = Set(
            transports.split(separator: ",").compactMap { HubTransport(rawValue: String($0)) })
        var backplane: RedisBackplane?
        if let redis, let (redisHost, redisPort) = Self.hostAndPort(redis) {
            var backplaneConfiguration = RedisBackplaneConfiguration(
                redis: RedisConfiguration(host: redisHost, port: redisPort), prefix: redisPrefix)
            backplaneConfiguration.logger = logger
            let id = serverId ?? "hub-chat-\(UInt64.random(in: 0...UInt64.max))"
            backplane = RedisBackplane(serverId: id, configuration: backplaneConfiguration)
            logger.info("sharing clients through Redis", metadata: ["redis": "\(redis)", "server": "\(id)"])
        }
        let chat = HubEndpoint(
            path: "/chat", hub: ChatHub.self, configuration: hubConfiguration, authenticator: authenticator,
            backplane: backplane)
        var configuration = Server.Configuration(host: host, port: port)
        configuration.logger = logger
        configuration.shutdownGracePeriod = .seconds(2)
        if h2c { configuration.http2 = Server.HTTP2Configuration(cleartextPriorKnowledge: true) }
        let server = Server(
            configuration: configuration, routes: [chat.webSocketRoute], eventStreamRoutes: [chat.eventStreamRoute],
            httpRoutes: chat.httpRoutes)
        logger.info("serving the chat hub on /chat")
        let group = ServiceGroup(
            configuration: .init(
                // Reverse order on shutdown: the hub sends its Close messages, then the server stops, then the
                // backplane's Redis connections close.
                services: (backplane.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                    + [.init(service: server), .init(service: chat)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
