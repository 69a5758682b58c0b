import NIOCore
import WebSocketCore

/// One received data message of the async API, or one piece of it in streaming delivery.
///
/// `payload` is a slice of the read it arrived in, without a copy, when the message arrived whole in one read
/// and is at least 1 KiB and a quarter of that read (the slice keeps the read's storage alive); a message of at
/// least 1 KiB joined from several pieces is handed out in the buffer it was joined in; otherwise it is a copy. For `.text` the bytes are valid UTF-8 (validated
/// by the core, RFC 6455 §8.1), so ``text`` never replaces anything — except in a streaming piece, which may
/// end inside a code point.
///
/// With `Connection.Configuration.delivery == .streaming` each element is a piece of a message as it arrived
/// (no reassembly up to the message limit): ``isFirst`` marks a message's first piece, ``isFinal`` its last.
/// With `.wholeMessages` (the default) both are `true`.
public struct WebSocketMessage: Sendable, Hashable {
    /// Text or binary (the opcode of the message's first frame).
    public var kind: MessageKind
    /// The message payload (all fragments joined), or this piece's bytes in streaming delivery.
    public var payload: ByteBuffer
    /// Whether this is the first piece of its message (always `true` for whole messages).
    public var isFirst: Bool
    /// Whether this is the last piece of its message (always `true` for whole messages).
    public var isFinal: Bool

    /// Creates a message, or a piece of one.
    public init(kind: MessageKind, payload: ByteBuffer, isFirst: Bool = true, isFinal: Bool = true) {
        self.kind = kind
        self.payload = payload
        self.isFirst = isFirst
        self.isFinal = isFinal
    }

    /// The payload decoded as UTF-8 (meaningful for `.text`; binary payloads are decoded leniently).
    public var text: String {
        String(decoding: self.payload.readableBytesView, as: UTF8.self)
    }
}

/// The inbound messages of a ``WebSocket``, in order; the sequence ends when the connection closes (then read
/// ``WebSocket/closeStatus``).
///
/// Backpressure: at most ``WebSocketConfiguration/inboundMessageBufferLimit`` messages wait for the consumer;
/// past that the handler stops reading from the socket until the consumer catches up (the heartbeat does not
/// count that pause against the peer, and our own close resumes reading). Only one iterator may be made. If
/// the iterator is dropped, or ``WebSocket/discardInboundMessages()`` was called, later messages are dropped
/// and reading never pauses (control frames and the close handshake are still handled).
public struct WebSocketInboundMessages: AsyncSequence, Sendable {
    public typealias Element = WebSocketMessage
    typealias Producer = NIOAsyncSequenceProducer<
        WebSocketMessage, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark,
        ProducerDelegate
    >

    let producer: Producer

    /// Iterates the messages; `next()` returns nil once the connection is closed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: Producer.AsyncIterator

        public mutating func next() async -> WebSocketMessage? {
            await self.base.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.producer.makeAsyncIterator())
    }
}

/// A WebSocket connection for structured concurrency: receive with ``messages``, send with the async methods.
///
/// Sendable; every method may be called from any task. Sends are ordered per caller; a send returns once the
/// frame is written to the channel and flushed, and waits first while the outbound queue is above the
/// high-water mark (``WebSocketConfiguration/outboundWaterMark``), so a fast producer cannot outrun the socket.
///
/// Create one with ``NIOCore/ChannelPipeline/SynchronousOperations/addAsyncWebSocket(role:configuration:subprotocol:leftoverBytes:registry:codec:)``
/// (server, after the upgrade), or with `WebSocket.connect(to:)` / `WebSocket.withConnection(to:_:)` of the
/// `WebSocketClient` module. A `WebSocket` released while its connection is open starts the close handshake
/// with 1001 (going away, RFC 6455 §7.4.1), so a forgotten connection does not stay open.
public final class WebSocket: Sendable {
    /// The channel the connection runs on.
    public let channel: any Channel
    /// The subprotocol agreed in the opening handshake (RFC 6455 §1.9), nil when none.
    public let subprotocol: String?
    /// The received messages (text and binary; control frames are handled by the handler).
    public let messages: WebSocketInboundMessages
    private let handler: NIOLoopBound<WebSocketHandler>
    private let closedFuture: EventLoopFuture<CloseStatus>

    init(
        channel: any Channel,
        subprotocol: String?,
        messages: WebSocketInboundMessages,
        handler: WebSocketHandler
    ) {
        self.channel = channel
        self.subprotocol = subprotocol
        self.messages = messages
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.closedFuture = handler.closed
    }

    /// The final close status: waits until the connection is over. The peer's close code and reason, the code we
    /// failed the connection with (1002, 1007, 1009...), or 1006 when the connection ended without a close
    /// handshake (RFC 6455 §7.1.5). Never throws.
    public var closeStatus: CloseStatus {
        get async {
            // The promise is only ever succeeded.
            (try? await self.closedFuture.get()) ?? CloseStatus(code: .abnormalClosure, reason: "")
        }
    }

    /// Completes with the final close status when the connection is over.
    public var closed: EventLoopFuture<CloseStatus> { self.closedFuture }

    /// A `Sendable` handle for sending from other tasks, e.g. to register the connection with a fan-out group.
    public var sendHandle: WebSocketSendHandle {
        WebSocketSendHandle(handler: self.handler, eventLoop: self.channel.eventLoop)
    }

    deinit {
        let handler = self.handler
        self.channel.eventLoop.execute {  // a no-op when the connection is already closing or closed
            try? handler.value.close(code: .goingAway, reason: "")
        }
    }

    /// Sends a UTF-8 text message (RFC 6455 §5.6).
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or closed.
    public func send(text: String, encode: Bool = true) async throws(WebSocketError) {
        try await self.send(.text, self.channel.allocator.buffer(string: text), encode: encode)
    }

    /// Sends a binary message whose payload is the buffer's readable bytes.
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or closed.
    public func send(binary: ByteBuffer, encode: Bool = true) async throws(WebSocketError) {
        try await self.send(.binary, binary, encode: encode)
    }

    /// Sends a message of the given kind. The payload is written without a copy on the server side and
    /// masked on the client side (in place if the buffer is uniquely owned). With a negotiated
    /// permessage-deflate the message is compressed unless `encode` is `false`. Returns once the frame is
    /// written to the socket.
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or closed.
    public func send(_ kind: MessageKind, _ payload: ByteBuffer, encode: Bool = true) async throws(WebSocketError) {
        try await self.run { handler, promise throws(WebSocketError) in
            try handler.sendFrame(kind.opcode, .buffer(payload), fin: true, encode: encode, promise: promise)
        }
    }

    /// Drops every message received from now on instead of queueing it for ``messages``, and never pauses
    /// reading for the consumer: for a task that only sends (a ticker, a broadcast feed). Pings, pongs and
    /// the close handshake are still handled. Call it before many messages can arrive.
    public func discardInboundMessages() {
        let handler = self.handler
        self.channel.eventLoop.execute {
            (handler.value.delegate as? AsyncMessageBridge)?.consumerTerminated(handler: handler.value)
        }
    }

    /// Sends several whole messages, in order, with one hop to the event loop and one flush: small ones leave in
    /// one buffer (one `write`), larger ones and shared frames as buffers of their own (one `writev` for the lot).
    /// Returns once all are written to the socket (after waiting for writability, as ``send(_:_:encode:)``).
    /// - Parameters:
    ///   - messages: in order; each is one unfragmented frame. ``WebSocketBatchMessage/payload(_:_:)`` is framed
    ///     by this connection (compressed when permessage-deflate was negotiated and `encode` is `true`);
    ///     ``WebSocketBatchMessage/shared(_:)`` writes the message's prebuilt frame by reference on a server
    ///     connection without permessage-deflate, else is framed (and compressed) here like a payload. An empty
    ///     array returns at once.
    ///   - encode: whether permessage-deflate may compress the messages framed here.
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or closed (messages before
    ///   the failing one may have been written); ``WebSocketError/sendFailed(_:)`` when the core refuses one
    ///   (e.g. while a fragmented message of this connection is unfinished, RFC 6455 §5.4).
    public func send(batch messages: [WebSocketBatchMessage], encode: Bool = true) async throws(WebSocketError) {
        guard !messages.isEmpty else { return }
        try await self.run { handler, promise throws(WebSocketError) in
            try handler.sendMessages(messages, encode: encode, promise: promise)
        }
    }

    /// Sends one message as several frames (RFC 6455 §5.4): the first fragment carries the kind, the others are
    /// continuation frames, the last has FIN. An empty sequence sends one empty message.
    public func send<Fragments: Sequence<ByteBuffer>>(
        _ kind: MessageKind,
        fragments: Fragments
    ) async throws(WebSocketError) {
        var iterator = fragments.makeIterator()
        var current = iterator.next() ?? ByteBuffer()
        var opcode: Opcode = kind == .text ? .text : .binary
        while true {
            let next = iterator.next()
            try await self.sendFrame(opcode, current, fin: next == nil)
            guard let next else { return }
            current = next
            opcode = .continuation
        }
    }

    /// Sends one data frame: `.text`/`.binary` starts a message, `.continuation` continues it, `fin` ends it.
    /// Fragments are never compressed.
    /// - Throws: ``WebSocketError/sendFailed(_:)`` when the core finds the order wrong (RFC 6455 §5.4),
    ///   ``WebSocketError/connectionClosed`` when the connection is closing or closed.
    public func sendFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool)
        async throws(WebSocketError)
    {
        try await self.run { handler, promise throws(WebSocketError) in
            try handler.sendFrame(opcode, .buffer(payload), fin: fin, promise: promise)
        }
    }

    /// Sends a ping with at most 125 bytes of payload (RFC 6455 §5.5.2). Pongs are answered automatically
    /// on the other side; the heartbeat (`Connection.Configuration.pingInterval`) needs no call.
    /// - Throws: ``WebSocketError/connectionClosed``; ``WebSocketError/sendFailed(_:)`` above 125 bytes.
    public func ping(_ payload: ByteBuffer = ByteBuffer()) async throws(WebSocketError) {
        try await self.run { handler, promise throws(WebSocketError) in
            try handler.sendControl(isPong: false, payload, promise: promise)
        }
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2) and waits until the connection is over; returns the final
    /// status (normally the peer's echo of `code`). Bounded by `closeTimeout`. Calling it on a closed
    /// connection just returns the status.
    @discardableResult
    public func close(code: CloseCode = .normalClosure, reason: String = "") async -> CloseStatus {
        let handler = self.handler
        try? await self.channel.eventLoop.submit { () throws -> Void in
            try handler.value.close(code: code, reason: reason)
        }.get()
        return await self.closeStatus
    }

    /// Waits for writability, then runs `body` on the event loop; returns when the frame is written.
    private func run(
        _ body: @escaping @Sendable (WebSocketHandler, EventLoopPromise<Void>) throws(WebSocketError) -> Void
    ) async throws(WebSocketError) {
        let handler = self.handler
        let eventLoop = self.channel.eventLoop
        let future = eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            handler.value.waitUntilWritable().flatMap { () -> EventLoopFuture<Void> in
                let written = eventLoop.makePromise(of: Void.self)
                try? body(handler.value, written)
                return written.futureResult
            }
        }
        do {
            try await future.get()
        } catch let error as WebSocketError {
            throw error
        } catch {
            throw .connectionClosed
        }
    }
}

/// Bridges the handler's callbacks to the async sequence, with backpressure both ways.
///
/// Limit: at most ``WebSocketConfiguration/inboundMessageBufferLimit`` messages wait for the consumer; past it
/// reading pauses. Once the close handshake has started reading cannot pause (the peer's close frame must be
/// read), so messages that arrive while the consumer is still over the limit are dropped instead of queued.
final class AsyncMessageBridge: WebSocketDelegate {
    private let source: WebSocketInboundMessages.Producer.Source
    private var consumerGone = false
    /// The producer said stop and the consumer has not asked for more since.
    private var overLimit = false

    init(source: WebSocketInboundMessages.Producer.Source) {
        self.source = source
    }

    /// The consumer took enough messages to be below the limit again.
    func consumerCaughtUp() {
        self.overLimit = false
    }

    /// The consumer is gone (or said it discards messages): drop what arrives and read freely.
    func consumerTerminated(handler: WebSocketHandler) {
        self.consumerGone = true
        handler.resumeReadingForConsumer()
    }

    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        self.yield(WebSocketMessage(kind: kind, payload: Self.buffer(payload, webSocket)), webSocket)
    }

    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {
        let piece = WebSocketMessage(
            kind: kind, payload: Self.buffer(payload, webSocket), isFirst: isFirst, isFinal: isFinal)
        self.yield(piece, webSocket)
    }

    /// The handler's own buffer holding the payload when it is at least 1 KiB: the joined message, or a slice of
    /// the current read when the payload is at least a quarter of it (worth keeping the read alive for); else a
    /// copy.
    private static func buffer(_ payload: UnsafeRawBufferPointer, _ webSocket: WebSocketDelegateContext) -> ByteBuffer {
        if payload.count >= 1024, let owned = webSocket.handler.ownedBuffer(holding: payload) {
            return owned
        }
        var buffer = webSocket.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        return buffer
    }

    private func yield(_ message: WebSocketMessage, _ webSocket: WebSocketDelegateContext) {
        guard !self.consumerGone else { return }
        if self.overLimit && webSocket.handler.connection.state != .open {
            return  // closing, the consumer lags and reading cannot pause: drop (see the type's limit)
        }
        switch self.source.yield(message) {
        case .produceMore:
            break
        case .stopProducing:
            self.overLimit = true
            webSocket.handler.pauseReadingForConsumer()
        case .dropped:
            self.consumerGone = true
        }
    }

    func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus) {
        self.source.finish()
    }
}

/// The producer delegate: hops to the event loop to resume reading. Holds the handler weakly so the
/// handler, the bridge and the sequence do not keep each other alive.
struct ProducerDelegate: NIOAsyncSequenceProducerDelegate {
    final class WeakHandler {
        weak var handler: WebSocketHandler?
        weak var bridge: AsyncMessageBridge?
    }

    let eventLoop: any EventLoop
    let box: NIOLoopBound<WeakHandler>

    func produceMore() {
        let box = self.box
        self.eventLoop.execute {
            box.value.bridge?.consumerCaughtUp()
            box.value.handler?.resumeReadingForConsumer()
        }
    }

    func didTerminate() {
        let box = self.box
        self.eventLoop.execute {
            if let handler = box.value.handler {
                box.value.bridge?.consumerTerminated(handler: handler)
            }
        }
    }
}
