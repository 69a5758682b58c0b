import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RESP

#if TLS
import NIOSSL
#endif

/// One connection to a Redis server, on SwiftNIO: commands (pipelined: several may be in flight, their replies
/// come back in order), and pub/sub (RESP3 pushes, or RESP2 pub/sub mode) delivered as ``messages``.
///
/// ```swift
/// let redis = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: 6379))
/// try await redis.subscribe(to: ["news"])
/// for try await message in redis.messages { ... }     // ends with an error if the connection is lost
/// ```
///
/// A connection does not reconnect: when it is lost, every waiting command fails with
/// ``RedisError/connectionClosed(midReply:)``, ``messages`` ends with it, and the owner calls
/// ``connect(_:eventLoopGroup:)`` again and subscribes again. In RESP2 a subscribed connection accepts only
/// (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING and QUIT (Redis refuses the rest); use a second connection to publish.
/// No command has a timeout of its own: a server that stops answering holds the caller until the connection
/// closes or the calling task is cancelled (wrap calls in a deadline, or close the connection). A cancelled
/// call throws `CancellationError` at once; its commands may still have been sent and run, and their replies,
/// when they come, are read and dropped, so the connection stays usable.
public final class RedisConnection: PubSubConnection {
    /// The protocol in use: 3 after `HELLO 3`, otherwise 2.
    public let protocolVersion: Int
    /// Pub/sub messages of every subscription, in arrival order; one consumer. Bounded by
    /// ``RedisConfiguration/messageBufferSize`` with ``RedisConfiguration/slowConsumerPolicy``. Ends normally
    /// after ``close()``, with a ``RedisError`` when the connection is lost or the consumer is too slow.
    public let messages: AsyncThrowingStream<PubSubMessage, any Error>

    private let channel: any Channel
    private let dropped: NIOLockedValueBox<Int>
    private let terminal: NIOLockedValueBox<RedisError?>

    private init(
        channel: any Channel,
        protocolVersion: Int,
        messages: AsyncThrowingStream<PubSubMessage, any Error>,
        dropped: NIOLockedValueBox<Int>,
        terminal: NIOLockedValueBox<RedisError?>
    ) {
        self.channel = channel
        self.protocolVersion = protocolVersion
        self.messages = messages
        self.dropped = dropped
        self.terminal = terminal
    }

    deinit {
        // The last reference is gone: nobody can read replies or messages any more.
        channel.close(promise: nil)
    }

    /// Pub/sub messages dropped by ``RedisConfiguration/SlowConsumerPolicy/dropNewest``.
    public var droppedMessages: Int { dropped.withLockedValue { $0 } }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// Connects, then negotiates: `HELLO 3 [AUTH user password] [SETNAME name]`; if the server refuses the
    /// protocol (`NOPROTO`, or `HELLO` unknown before Redis 6), falls back to RESP2 with `AUTH` and
    /// `CLIENT SETNAME`. Call it again to reconnect.
    /// - Throws: ``RedisError/authenticationFailed(_:)`` when the credentials are refused,
    ///   ``RedisError/server(_:)`` for other error replies, NIO's connect errors, or any ``RedisError``.
    public static func connect(
        _ configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RedisConnection {
        let (messages, continuation) = AsyncThrowingStream.makeStream(
            of: PubSubMessage.self,
            throwing: (any Error).self,
            bufferingPolicy: .bufferingOldest(configuration.messageBufferSize)
        )
        let dropped = NIOLockedValueBox(0)
        let terminal = NIOLockedValueBox<RedisError?>(nil)
        let bounded = min(max(configuration.connectTimeout, .zero), .seconds(86_400))
        let timeout = TimeAmount.milliseconds(Int64(bounded / .milliseconds(1)))
        #if TLS
        let sslContext: NIOSSLContext?
        do {
            sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            continuation.finish(throwing: error)
            throw error
        }
        let serverName = configuration.tlsServerName ?? (isIPAddress(configuration.host) ? nil : configuration.host)
        #endif
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = RedisChannelHandler(
                            parser: configuration.parser,
                            continuation: continuation,
                            policy: configuration.slowConsumerPolicy,
                            bufferSize: configuration.messageBufferSize,
                            dropped: dropped,
                            terminal: terminal
                        )
                        #if TLS
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                            )
                        }
                        #endif
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return channel
                    }
                }
        } catch {
            continuation.finish(throwing: error)
            throw error
        }
        do {
            let version = try await handshake(configuration, on: channel, terminal: terminal)
            return RedisConnection(
                channel: channel,
                protocolVersion: version,
                messages: messages,
                dropped: dropped,
                terminal: terminal
            )
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// `HELLO 3`, or the RESP2 fallback. - Returns: the protocol version in use.
    private static func handshake(
        _ configuration: RedisConfiguration,
        on channel: any Channel,
        terminal: NIOLockedValueBox<RedisError?>
    ) async throws -> Int {
        if configuration.protocolPreference == .resp3 {
            let hello = RESPCommand.hello(
                protocolVersion: 3,
                username: configuration.username,
                password: configuration.password,
                clientName: configuration.clientName
            )
            let reply = try await send([hello], on: channel, terminal: terminal)[0]
            guard let message = reply.errorMessage else {
                try await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self).protocolVersion = 3
                }.get()
                return 3
            }
            let upper = message.uppercased()
            if upper.hasPrefix("WRONGPASS") || upper.hasPrefix("NOAUTH") || upper.hasPrefix("NOPERM") {
                throw RedisError.authenticationFailed(message)
            }
            guard upper.hasPrefix("NOPROTO") || upper.hasPrefix("ERR UNKNOWN COMMAND") else {
                throw RedisError.server(message)
            }
        }
        var commands: [RESPCommand] = []
        if let password = configuration.password {
            commands.append(.auth(username: configuration.username, password: password))
        }
        if let name = configuration.clientName { commands.append(RESPCommand("CLIENT", "SETNAME", name)) }
        guard !commands.isEmpty else { return 2 }
        let replies = try await send(commands, on: channel, terminal: terminal)
        if configuration.password != nil, let message = replies[0].errorMessage {
            throw RedisError.authenticationFailed(message)
        }
        if let message = replies.lazy.compactMap(\.errorMessage).first { throw RedisError.server(message) }
        return 2
    }

    /// What `command` waits for: one confirmation per channel or pattern for the pub/sub commands, one reply
    /// for the others.
    /// - Throws: ``RedisError/unsupportedCommand(_:)`` for (P)UNSUBSCRIBE without arguments ("from all": the
    ///   number of confirmations is not known in advance) and for the sharded `S…` variants.
    private static func expectation(for command: RESPCommand) throws -> ReplyExpectation {
        switch command.name.uppercased() {
        case "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE":
            guard command.arguments.count > 1 else { throw RedisError.unsupportedCommand(command.name) }
            return .confirmations(command.arguments.count - 1)
        case "SSUBSCRIBE", "SUNSUBSCRIBE":
            throw RedisError.unsupportedCommand(command.name)
        default:
            return .reply
        }
    }

    private static func send(
        _ commands: [RESPCommand],
        on channel: any Channel,
        terminal: NIOLockedValueBox<RedisError?>
    ) async throws -> [RESPValue] {
        let expectations = try commands.map(expectation(for:))
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        let request = RedisRequest(
            commands: commands,
            expectations: expectations,
            promises: promises
        )
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            // The handler was gone (the channel closed): nobody else will complete these. Report what ended
            // the connection.
            let failure =
                terminal.withLockedValue { $0 } ?? (error as? RedisError) ?? .connectionClosed(midReply: false)
            for promise in promises { promise.fail(failure) }
        }
        channel.writeAndFlush(request, promise: written)
        // Cancellation fails the caller's promises at once; their slots stay in the handler's queue, so the
        // replies still come are matched to them (and dropped) and later commands get their own.
        return try await withTaskCancellationHandler {
            var replies: [RESPValue] = []
            replies.reserveCapacity(promises.count)
            for promise in promises { replies.append(try await promise.futureResult.get()) }
            return replies
        } onCancel: {
            for promise in promises { promise.fail(CancellationError()) }
        }
    }

    // MARK: Commands

    /// Sends one command and returns its reply; error replies are returned as values
    /// (``RESPValue/errorMessage``), not thrown.
    /// - Throws: ``RedisError`` when the connection ends before the reply; `CancellationError` when the task is
    ///   cancelled first (the command may still run); ``RedisError/unsupportedCommand(_:)`` (nothing sent) for
    ///   the commands the pipelined form refuses.
    public func send(_ command: RESPCommand) async throws -> RESPValue {
        try Self.refuseProtocolSwitch([command])
        return try await Self.send([command], on: channel, terminal: terminal)[0]
    }

    /// `HELLO` and `RESET` change the protocol the server speaks (`RESET` also ends pub/sub mode without
    /// confirmations) behind the reply matching; ``connect(_:eventLoopGroup:)`` sends the only `HELLO`.
    private static func refuseProtocolSwitch(_ commands: [RESPCommand]) throws {
        if let command = commands.first(where: { ["HELLO", "RESET"].contains($0.name.uppercased()) }) {
            throw RedisError.unsupportedCommand(command.name)
        }
    }

    /// Pipelining: writes every command at once (one write), then returns their replies in order.
    /// Error replies are returned as values. For (P)SUBSCRIBE and (P)UNSUBSCRIBE the reply is the last
    /// confirmation (prefer ``subscribe(to:)`` and the other typed calls).
    /// - Throws: ``RedisError`` when the connection ends before the last reply;
    ///   ``RedisError/unsupportedCommand(_:)`` (nothing sent) for (P)UNSUBSCRIBE without arguments, the
    ///   sharded `SSUBSCRIBE`/`SUNSUBSCRIBE`, and `HELLO` and `RESET` (they switch the protocol under the reply
    ///   matching; connect again for another protocol).
    public func send(_ commands: [RESPCommand]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        try Self.refuseProtocolSwitch(commands)
        return try await Self.send(commands, on: channel, terminal: terminal)
    }

    /// Sends a command and throws its error reply as ``RedisError/server(_:)``.
    @discardableResult
    public func run(_ command: RESPCommand) async throws -> RESPValue {
        let reply = try await send(command)
        if let message = reply.errorMessage { throw RedisError.server(message) }
        return reply
    }

    /// `PING`. - Throws: ``RedisError``, also when the reply is not `PONG` (RESP2 pub/sub mode answers
    /// `["pong", ""]`, accepted too).
    public func ping() async throws {
        let reply = try await run(.ping())
        let text = reply.string ?? reply.elements?.first?.string
        guard text?.uppercased() == "PONG" else { throw RedisError.unexpectedReply("PING: \(reply)") }
    }

    public func publish(_ payload: [UInt8], to channel: String) async throws -> Int {
        let reply = try await run(.publish(channel: channel, message: payload))
        guard let count = reply.integer else { throw RedisError.unexpectedReply("PUBLISH: \(reply)") }
        return Int(count)
    }

    public func subscribe(to channels: [String]) async throws {
        try await confirm(.subscribe(channels), count: channels.count)
    }

    public func unsubscribe(from channels: [String]) async throws {
        try await confirm(.unsubscribe(channels), count: channels.count)
    }

    public func subscribe(toPatterns patterns: [String]) async throws {
        try await confirm(.psubscribe(patterns), count: patterns.count)
    }

    public func unsubscribe(fromPatterns patterns: [String]) async throws {
        try await confirm(.punsubscribe(patterns), count: patterns.count)
    }

    private func confirm(_ command: RESPCommand, count: Int) async throws {
        guard count > 0 else { return }  // without arguments (P)UNSUBSCRIBE means "all": not offered
        let reply = try await Self.send([command], on: channel, terminal: terminal)[0]
        if let message = reply.errorMessage { throw RedisError.server(message) }
    }

    /// `XADD key MAXLEN ~ maxLength * field value …`: appends an entry to a stream, keeping about
    /// `maxLength` entries. - Returns: the entry's ID (`milliseconds-sequence`).
    public func xadd(
        key: String,
        maxLength: Int? = nil,
        approximate: Bool = true,
        fields: [(field: String, value: [UInt8])]
    ) async throws -> String {
        let reply = try await run(.xadd(key: key, maxLength: maxLength, approximate: approximate, fields: fields))
        guard let id = reply.string else { throw RedisError.unexpectedReply("XADD: \(reply)") }
        return id
    }

    /// `XRANGE key start end [COUNT count]`. - Returns: the entries, oldest first.
    public func xrange(key: String, start: String = "-", end: String = "+", count: Int? = nil) async throws
        -> [RedisStreamEntry]
    {
        let reply = try await run(.xrange(key: key, start: start, end: end, count: count))
        guard let entries = reply.elements else { throw RedisError.unexpectedReply("XRANGE: \(reply)") }
        return try entries.map { entry in
            guard let parts = entry.elements, parts.count == 2, let id = parts[0].string,
                let flat = parts[1].elements ?? (parts[1].withoutAttributes.mapPairs), flat.count % 2 == 0
            else { throw RedisError.unexpectedReply("XRANGE entry: \(entry)") }
            var fields: [RedisStreamEntry.Field] = []
            for index in stride(from: 0, to: flat.count, by: 2) {
                guard let name = flat[index].string, let value = flat[index + 1].bytes else {
                    throw RedisError.unexpectedReply("XRANGE field: \(entry)")
                }
                fields.append(.init(name: name, value: value))
            }
            return RedisStreamEntry(id: id, fields: fields)
        }
    }

    /// Closes the connection: waiting commands fail with ``RedisError/closedLocally``, ``messages`` ends
    /// without an error.
    public func close() async {
        try? await channel.close()
    }
}

/// One entry of a Redis stream (`XRANGE`).
public struct RedisStreamEntry: Sendable, Hashable {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: [UInt8]

        public init(name: String, value: [UInt8]) {
            self.name = name
            self.value = value
        }
    }

    /// `milliseconds-sequence`.
    public var id: String
    /// In the order they were added.
    public var fields: [Field]

    public init(id: String, fields: [Field]) {
        self.id = id
        self.fields = fields
    }
}

extension RESPValue {
    /// A map's pairs flattened (key, value, key, value …); `nil` for other values.
    fileprivate var mapPairs: [RESPValue]? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.flatMap { [$0.key, $0.value] }
    }
}

/// Whether `host` is an IPv4 or IPv6 literal (no SNI for those).
func isIPAddress(_ host: String) -> Bool {
    (try? SocketAddress(ipAddress: host, port: 0)) != nil
}
