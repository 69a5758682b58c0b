import NIOConcurrencyHelpers
import NIOCore
import RESP

/// What a command waits for.
enum ReplyExpectation: Sendable {
    /// One reply.
    case reply
    /// `count` pub/sub confirmations (`subscribe`, `unsubscribe`, `psubscribe`, `punsubscribe`), one per
    /// channel or pattern; the promise gets the last one. An error reply instead completes it at once.
    case confirmations(Int)
}

/// Commands to write in one go, each with what it waits for and the promise of its reply.
struct RedisRequest: Sendable {
    var commands: [RESPCommand]
    var expectations: [ReplyExpectation]
    var promises: [EventLoopPromise<RESPValue>]
}

/// The NIO glue around ``RESPParser``: writes commands, matches replies to their promises in order (Redis
/// answers commands in the order it received them), routes pub/sub messages to the message stream, and fails
/// everything with one ``RedisError`` when the connection ends.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Waiting {
        var expectation: ReplyExpectation
        var promise: EventLoopPromise<RESPValue>
    }

    private var parser: RESPParser
    private var waiting = CircularBuffer<Waiting>()
    /// RESP2 only: the server confirmed a subscription and has not confirmed the end of the last one, so arrays
    /// starting with `message`, `pmessage`, `subscribe`… are pub/sub traffic. Replies to commands sent before the
    /// first (P)SUBSCRIBE arrive before its confirmation and stay replies whatever they hold (`MGET` of a key
    /// whose value is `message`). RESP3 marks pub/sub traffic as pushes.
    private var subscribedRESP2 = false
    /// 2 until `HELLO 3` succeeds.
    var protocolVersion = 2
    private var failure: RedisError?
    private var closingLocally = false
    private let continuation: AsyncThrowingStream<PubSubMessage, any Error>.Continuation
    private let policy: RedisConfiguration.SlowConsumerPolicy
    private let bufferSize: Int
    private let dropped: NIOLockedValueBox<Int>
    /// The error that ended the connection, for calls made after the handler is gone.
    private let terminal: NIOLockedValueBox<RedisError?>

    init(
        parser: RESPParser.Configuration,
        continuation: AsyncThrowingStream<PubSubMessage, any Error>.Continuation,
        policy: RedisConfiguration.SlowConsumerPolicy,
        bufferSize: Int,
        dropped: NIOLockedValueBox<Int>,
        terminal: NIOLockedValueBox<RedisError?>
    ) {
        self.parser = RESPParser(configuration: parser)
        self.continuation = continuation
        self.policy = policy
        self.bufferSize = bufferSize
        self.dropped = dropped
        self.terminal = terminal
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            for requestPromise in request.promises { requestPromise.fail(failure) }
            promise?.fail(failure)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(request.commands.reduce(0) { $0 + $1.encodedLength })
        for (index, command) in request.commands.enumerated() {
            command.encode(into: &bytes)
            waiting.append(Waiting(expectation: request.expectations[index], promise: request.promises[index]))
        }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { closingLocally = true }
        context.close(mode: mode, promise: promise)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard failure == nil else { return }
        let buffer = unwrapInboundIn(data)
        let values: [RESPValue]
        do {
            values = try parser.parse(buffer.readableBytesView)
        } catch {
            fail(.protocolViolation(error), context: context)
            return
        }
        for value in values {
            guard failure == nil else { return }
            handle(value, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(closingLocally ? .closedLocally : .connectionClosed(midReply: !parser.isIdle), context: nil)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(.closedLocally, context: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.io(String(describing: error)), context: context)
    }

    private func handle(_ value: RESPValue, context: ChannelHandlerContext) {
        if case .push(let elements) = value.withoutAttributes {
            handlePubSub(elements, value: value, context: context)
            return
        }
        if protocolVersion == 2, case .array(let elements?) = value,
            let kind = elements.first?.string, Self.pubSubKinds.contains(kind.lowercased()),
            subscribedRESP2 || waiting.first.map(Self.isConfirmation) == true
        {
            handlePubSub(elements, value: value, context: context)
            return
        }
        guard let head = waiting.popFirst() else {
            fail(.unexpectedReply("a reply without a command: \(value)"), context: context)
            return
        }
        head.promise.succeed(value)
    }

    private static let pubSubKinds: Set<String> = [
        "message", "pmessage", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
    ]

    private func handlePubSub(_ elements: [RESPValue], value: RESPValue, context: ChannelHandlerContext) {
        switch elements.first?.string?.lowercased() {
        case "message" where elements.count == 3:
            guard let channel = elements[1].string, let payload = elements[2].bytes else { break }
            deliver(PubSubMessage(channel: channel, payload: payload), context: context)
        case "pmessage" where elements.count == 4:
            guard let pattern = elements[1].string, let channel = elements[2].string, let payload = elements[3].bytes
            else { break }
            deliver(PubSubMessage(channel: channel, pattern: pattern, payload: payload), context: context)
        case "subscribe", "unsubscribe", "psubscribe", "punsubscribe":
            // The server's count of this connection's subscriptions (channels and patterns).
            if elements.count == 3, let count = elements[2].integer { subscribedRESP2 = count > 0 }
            // The confirmation of the command at the head; unsolicited ones (a server-side unsubscribe) are
            // ignored.
            guard let head = waiting.first, case .confirmations(let count) = head.expectation else { break }
            if count <= 1 {
                waiting.removeFirst()
                head.promise.succeed(value)
            } else {
                waiting[waiting.startIndex].expectation = .confirmations(count - 1)
            }
        default:
            break  // other pushes (client-side caching invalidations…) are not ours
        }
    }

    private static func isConfirmation(_ waiting: Waiting) -> Bool {
        if case .confirmations = waiting.expectation { return true }
        return false
    }

    private func deliver(_ message: PubSubMessage, context: ChannelHandlerContext) {
        switch continuation.yield(message) {
        case .dropped:
            switch policy {
            case .dropNewest:
                dropped.withLockedValue { $0 += 1 }
            case .closeConnection:
                fail(.slowConsumer(bufferSize: bufferSize), context: context)
            }
        case .enqueued, .terminated:
            break
        @unknown default:
            break
        }
    }

    /// Ends everything with `error` (the first one wins), and closes the channel when given its context.
    private func fail(_ error: RedisError, context: ChannelHandlerContext?) {
        guard failure == nil else { return }
        failure = error
        terminal.withLockedValue { $0 = error }
        while let head = waiting.popFirst() { head.promise.fail(error) }
        if error == .closedLocally {
            continuation.finish()
        } else {
            continuation.finish(throwing: error)
        }
        context?.close(promise: nil)
    }
}
