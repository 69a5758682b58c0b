import NIOCore
import WebSocketCore

/// The delegate API: the fastest way to consume a WebSocket, for custom binary protocols and servers that
/// must not copy.
///
/// All methods are called on the channel's event loop, in wire order, from inside the handler's read loop.
/// Payload pointers are **borrowed**: they point into the receive buffer (unmasked in place) or into the
/// core's reassembly buffer and are valid only until the method returns; they must not be captured. Copy
/// what you keep (`ByteBuffer(bytes:)`, ``WebSocketDelegateContext/send(_:copying:fin:encode:promise:)``)
/// *before* calling any other method on the ``WebSocketDelegateContext``, since that may reuse the core's
/// storage.
///
/// Every method has an empty default implementation except message delivery.
public protocol WebSocketDelegate {
    /// The handler is installed on an active channel; sends are possible from here on.
    func webSocketDidOpen(_ webSocket: WebSocketDelegateContext)

    /// A whole data message (`Connection.Configuration.delivery == .wholeMessages`, the default).
    /// Text payloads are valid UTF-8 (the core validates them, RFC 6455 §8.1).
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    )

    /// A piece of a data message (`delivery == .streaming`). `isFirst` marks the first piece of a message,
    /// `isFinal` its last; text pieces are validated incrementally (a code point may straddle pieces).
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    )

    /// A ping (RFC 6455 §5.5.2). With `autoPong` (the default) the pong is already queued.
    func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePing payload: UnsafeRawBufferPointer)

    /// A pong (RFC 6455 §5.5.3), solicited or not.
    func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePong payload: UnsafeRawBufferPointer)

    /// The peer's close frame (RFC 6455 §5.5.1); code 1005 when it carried none. The echo is already queued.
    /// ``webSocket(_:didCloseWith:)`` follows once the transport is closed.
    func webSocket(_ webSocket: WebSocketDelegateContext, didReceiveClose status: CloseStatus)

    /// The outbound queue crossed ``WebSocketConfiguration/outboundWaterMark``: `false` when it rose above
    /// `high` (stop producing), `true` when it fell below `low` again (resume). A producer that sends many
    /// messages waits for `true` instead of polling ``WebSocketDelegateContext/isWritable``.
    func webSocket(_ webSocket: WebSocketDelegateContext, writabilityChanged isWritable: Bool)

    /// The connection is over and the channel closed. Called exactly once. `status` is the peer's close, the
    /// code we failed the connection with (1002, 1007, 1009...), or 1006 (abnormal closure: the TCP
    /// connection ended, with the transport error as reason when there was one, or the heartbeat found the
    /// peer silent).
    func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus)
}

extension WebSocketDelegate {
    public func webSocketDidOpen(_ webSocket: WebSocketDelegateContext) {}
    public func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {}
    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePing payload: UnsafeRawBufferPointer) {}
    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePong payload: UnsafeRawBufferPointer) {}
    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceiveClose status: CloseStatus) {}
    public func webSocket(_ webSocket: WebSocketDelegateContext, writabilityChanged isWritable: Bool) {}
    public func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus) {}
}

/// A ``WebSocketDelegate`` made of closures, for callers that prefer not to declare a type.
///
/// Closures run on the event loop with borrowed payloads (see ``WebSocketDelegate``).
public struct WebSocketClosureDelegate: WebSocketDelegate {
    /// Called once the handler is active.
    public var onOpen: ((WebSocketDelegateContext) -> Void)?
    /// Called for every whole message (and, in streaming mode, never).
    public var onMessage: ((WebSocketDelegateContext, MessageKind, UnsafeRawBufferPointer) -> Void)?
    /// Called for every message piece in streaming mode: (context, kind, payload, isFirst, isFinal).
    public var onFragment: ((WebSocketDelegateContext, MessageKind, UnsafeRawBufferPointer, Bool, Bool) -> Void)?
    /// Called for every ping.
    public var onPing: ((WebSocketDelegateContext, UnsafeRawBufferPointer) -> Void)?
    /// Called for every pong.
    public var onPong: ((WebSocketDelegateContext, UnsafeRawBufferPointer) -> Void)?
    /// Called when the peer's close frame arrives.
    public var onCloseFrame: ((WebSocketDelegateContext, CloseStatus) -> Void)?
    /// Called when the outbound queue crosses its water marks (`true`: writable again).
    public var onWritabilityChanged: ((WebSocketDelegateContext, Bool) -> Void)?
    /// Called once when the connection is over.
    public var onClosed: ((WebSocketDelegateContext, CloseStatus) -> Void)?

    /// Creates a delegate; every closure is optional.
    public init(
        onOpen: ((WebSocketDelegateContext) -> Void)? = nil,
        onMessage: ((WebSocketDelegateContext, MessageKind, UnsafeRawBufferPointer) -> Void)? = nil,
        onFragment: ((WebSocketDelegateContext, MessageKind, UnsafeRawBufferPointer, Bool, Bool) -> Void)? = nil,
        onPing: ((WebSocketDelegateContext, UnsafeRawBufferPointer) -> Void)? = nil,
        onPong: ((WebSocketDelegateContext, UnsafeRawBufferPointer) -> Void)? = nil,
        onCloseFrame: ((WebSocketDelegateContext, CloseStatus) -> Void)? = nil,
        onWritabilityChanged: ((WebSocketDelegateContext, Bool) -> Void)? = nil,
        onClosed: ((WebSocketDelegateContext, CloseStatus) -> Void)? = nil
    ) {
        self.onOpen = onOpen
        self.onMessage = onMessage
        self.onFragment = onFragment
        self.onPing = onPing
        self.onPong = onPong
        self.onCloseFrame = onCloseFrame
        self.onWritabilityChanged = onWritabilityChanged
        self.onClosed = onClosed
    }

    public func webSocketDidOpen(_ webSocket: WebSocketDelegateContext) {
        self.onOpen?(webSocket)
    }

    public func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        self.onMessage?(webSocket, kind, payload)
    }

    public func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {
        self.onFragment?(webSocket, kind, payload, isFirst, isFinal)
    }

    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePing payload: UnsafeRawBufferPointer) {
        self.onPing?(webSocket, payload)
    }

    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceivePong payload: UnsafeRawBufferPointer) {
        self.onPong?(webSocket, payload)
    }

    public func webSocket(_ webSocket: WebSocketDelegateContext, didReceiveClose status: CloseStatus) {
        self.onCloseFrame?(webSocket, status)
    }

    public func webSocket(_ webSocket: WebSocketDelegateContext, writabilityChanged isWritable: Bool) {
        self.onWritabilityChanged?(webSocket, isWritable)
    }

    public func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus) {
        self.onClosed?(webSocket, status)
    }
}

/// The sending side of the delegate API on the event loop: handed to every ``WebSocketDelegate`` method and
/// returned by the installer. Use it on the channel's event loop only; from any other thread or task use
/// ``sendHandle`` (a `Sendable` ``WebSocketSendHandle``).
///
/// Sends from inside a delegate method are flushed once the current read is processed (batched); sends from
/// elsewhere are flushed at once. Every send takes an optional `promise` that completes when the frame has
/// been written to the socket (or fails with the send's error).
public struct WebSocketDelegateContext {
    let handler: WebSocketHandler

    /// The channel this WebSocket runs on.
    public let channel: any Channel

    init(handler: WebSocketHandler, channel: any Channel) {
        self.handler = handler
        self.channel = channel
    }

    /// The channel's event loop: call every method of this type on it.
    public var eventLoop: any EventLoop { self.handler.eventLoop }

    /// The channel's allocator, for building payloads.
    public var allocator: ByteBufferAllocator { self.channel.allocator }

    /// The subprotocol agreed in the opening handshake (RFC 6455 §1.9), nil when none.
    public var subprotocol: String? { self.handler.subprotocol }

    /// The final close status once the connection is over, else nil.
    public var closeStatus: CloseStatus? { self.handler.finalStatus }

    /// Succeeds with the final close status when the connection is over, right after
    /// ``WebSocketDelegate/webSocket(_:didCloseWith:)``; never fails.
    public var closed: EventLoopFuture<CloseStatus> { self.handler.closed }

    /// False while the outbound queue is above the configured high-water mark; the delegate is told when
    /// this changes (``WebSocketDelegate/webSocket(_:writabilityChanged:)``).
    public var isWritable: Bool { self.channel.isWritable }

    /// A `Sendable` handle on this WebSocket for sending from any thread or task.
    public var sendHandle: WebSocketSendHandle { WebSocketSendHandle(handler: self.handler) }

    /// Sends a message, or the first frame of a fragmented one (`fin: false`), whose payload is a
    /// `ByteBuffer`'s readable bytes.
    ///
    /// Zero-copy on the server side for payloads above ``WebSocketConfiguration/smallPayloadCopyLimit``: the
    /// header goes into a small buffer and the payload follows as a second write (one `writev`). The client
    /// masks the payload (RFC 6455 §5.3) in place when the buffer is uniquely owned, else on a copy. With a
    /// negotiated permessage-deflate a whole message is compressed unless `encode` is `false`.
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or gone,
    ///   ``WebSocketError/sendFailed(_:)`` when the core refuses (fragment order); `promise` fails the same way.
    public func send(
        _ kind: MessageKind,
        _ payload: ByteBuffer,
        fin: Bool = true,
        encode: Bool = true,
        promise: EventLoopPromise<Void>? = nil
    ) throws(WebSocketError) {
        try self.handler.sendFrame(kind.opcode, .buffer(payload), fin: fin, encode: encode, promise: promise)
    }

    /// Sends a UTF-8 text message.
    /// - Throws: as ``send(_:_:fin:encode:promise:)``.
    public func send(text: String, promise: EventLoopPromise<Void>? = nil) throws(WebSocketError) {
        try self.handler.sendFrame(.text, .buffer(self.allocator.buffer(string: text)), fin: true, promise: promise)
    }

    /// Sends a message whose payload is borrowed memory (for example a payload received in a delegate method,
    /// to echo it). The bytes are copied once, right behind the frame header, into a single outbound buffer.
    /// - Throws: as ``send(_:_:fin:encode:promise:)``.
    public func send(
        _ kind: MessageKind,
        copying payload: UnsafeRawBufferPointer,
        fin: Bool = true,
        encode: Bool = true,
        promise: EventLoopPromise<Void>? = nil
    ) throws(WebSocketError) {
        try self.handler.sendFrame(kind.opcode, .borrowed(payload), fin: fin, encode: encode, promise: promise)
    }

    /// Sends one data frame: `.text` / `.binary` starts a message, `.continuation` continues it; `fin` ends it
    /// (RFC 6455 §5.4). Fragments are never compressed. Control opcodes are refused; use ``ping(_:promise:)``
    /// and ``close(code:reason:promise:)``.
    /// - Throws: as ``send(_:_:fin:encode:promise:)``.
    public func sendFrame(
        _ opcode: Opcode,
        _ payload: ByteBuffer,
        fin: Bool,
        promise: EventLoopPromise<Void>? = nil
    ) throws(WebSocketError) {
        try self.handler.sendFrame(opcode, .buffer(payload), fin: fin, promise: promise)
    }

    /// Sends a ping with up to 125 bytes of payload (RFC 6455 §5.5.2).
    /// - Throws: ``WebSocketError/connectionClosed``; ``WebSocketError/sendFailed(_:)`` above 125 bytes.
    public func ping(_ payload: ByteBuffer = ByteBuffer(), promise: EventLoopPromise<Void>? = nil)
        throws(WebSocketError)
    {
        try self.handler.sendControl(isPong: false, payload, promise: promise)
    }

    /// Sends an unsolicited pong (a unidirectional heartbeat, RFC 6455 §5.5.3), or a manual reply when
    /// `autoPong` is off. At most 125 bytes.
    /// - Throws: as ``ping(_:promise:)``.
    public func pong(_ payload: ByteBuffer = ByteBuffer(), promise: EventLoopPromise<Void>? = nil)
        throws(WebSocketError)
    {
        try self.handler.sendControl(isPong: true, payload, promise: promise)
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2) with a code that may be sent (§7.4) and a UTF-8 reason
    /// of at most 123 bytes. ``WebSocketDelegate/webSocket(_:didCloseWith:)`` follows when it completes or
    /// times out (`closeTimeout`). `promise` completes when the close frame is written.
    /// - Throws: ``WebSocketError/connectionClosed`` when a close frame was already sent or the connection is
    ///   gone; ``WebSocketError/sendFailed(_:)`` for a code that may not be sent or a reason above 123 bytes.
    public func close(code: CloseCode = .normalClosure, reason: String = "", promise: EventLoopPromise<Void>? = nil)
        throws(WebSocketError)
    {
        try self.handler.close(code: code, reason: reason, promise: promise)
    }
}

/// A `Sendable` handle on one WebSocket of the delegate API, for sending from any thread or task.
///
/// Every method runs on the connection's event loop (at once when called there, else through
/// `EventLoop.execute`) and returns a future that succeeds when the frame has been written to the socket, or
/// fails with ``WebSocketError``. Sends from one thread keep their order. Sending does not wait for
/// writability: check the delegate's writability signal, or use ``writable()``, before producing more.
public struct WebSocketSendHandle: Sendable {
    private let handler: NIOLoopBound<WebSocketHandler>

    /// The connection's event loop.
    public let eventLoop: any EventLoop

    init(handler: WebSocketHandler) {
        self.handler = NIOLoopBound(handler, eventLoop: handler.eventLoop)
        self.eventLoop = handler.eventLoop
    }

    init(handler: NIOLoopBound<WebSocketHandler>, eventLoop: any EventLoop) {
        self.handler = handler
        self.eventLoop = eventLoop
    }

    /// Succeeds with the final close status when the connection is over; never fails.
    public var closed: EventLoopFuture<CloseStatus> {
        let handler = self.handler
        return self.eventLoop.flatSubmit { handler.value.closed }
    }

    /// Writes a message framed once for many connections (see ``WebSocketSharedMessage``) and flushes it, or
    /// closes the connection as a slow consumer: when its outbound buffer (bytes given to the channel and not yet
    /// taken by the socket) is not empty and would exceed `maxBufferedBytes` with this frame, nothing is written
    /// and the closing handshake starts with `slowConsumerCode` and `slowConsumerReason` (its close frame queues
    /// behind what is buffered; ``WebSocketConfiguration`` `closeTimeout` bounds the wait). So the buffer holds at
    /// most `maxBufferedBytes` plus one frame and a close frame. Over HTTP/2 (a stream channel does not report
    /// its buffered bytes) the stream counts as full once it is not writable (above its high-water mark).
    ///
    /// Call it on ``eventLoop`` only (fan-out groups its receivers by event loop and writes from one task per
    /// loop).
    public func sendSharedOnEventLoop(
        _ message: WebSocketSharedMessage,
        maxBufferedBytes: Int,
        slowConsumerCode: CloseCode = .tryAgainLater,
        slowConsumerReason: String = "slow consumer"
    ) -> WebSocketSharedSendResult {
        self.handler.value.sendShared(
            message,
            maxBufferedBytes: maxBufferedBytes,
            slowConsumerCode: slowConsumerCode,
            slowConsumerReason: slowConsumerReason
        )
    }

    /// Sends a message whose payload is a buffer's readable bytes (see
    /// ``WebSocketDelegateContext/send(_:_:fin:encode:promise:)``).
    @discardableResult
    public func send(_ kind: MessageKind, _ payload: ByteBuffer, encode: Bool = true) -> EventLoopFuture<Void> {
        self.run { handler, promise in
            try? handler.sendFrame(kind.opcode, .buffer(payload), fin: true, encode: encode, promise: promise)
        }
    }

    /// Sends a UTF-8 text message.
    @discardableResult
    public func send(text: String) -> EventLoopFuture<Void> {
        self.send(.text, ByteBuffer(string: text))
    }

    /// Sends one data frame (see ``WebSocketDelegateContext/sendFrame(_:_:fin:promise:)``).
    @discardableResult
    public func sendFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool) -> EventLoopFuture<Void> {
        self.run { handler, promise in
            try? handler.sendFrame(opcode, .buffer(payload), fin: fin, promise: promise)
        }
    }

    /// Sends a ping with up to 125 bytes of payload (RFC 6455 §5.5.2).
    @discardableResult
    public func ping(_ payload: ByteBuffer = ByteBuffer()) -> EventLoopFuture<Void> {
        self.run { handler, promise in try? handler.sendControl(isPong: false, payload, promise: promise) }
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2); the future succeeds when the close frame is written.
    @discardableResult
    public func close(code: CloseCode = .normalClosure, reason: String = "") -> EventLoopFuture<Void> {
        self.run { handler, promise in try? handler.close(code: code, reason: reason, promise: promise) }
    }

    /// Succeeds when the outbound queue is below its high-water mark (at once if it is); fails with
    /// ``WebSocketError/connectionClosed`` when the connection ends first.
    public func writable() -> EventLoopFuture<Void> {
        let handler = self.handler
        return self.eventLoop.flatSubmit { handler.value.waitUntilWritable() }
    }

    private func run(
        _ body: @escaping @Sendable (WebSocketHandler, EventLoopPromise<Void>) -> Void
    ) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        let handler = self.handler
        if self.eventLoop.inEventLoop {
            body(handler.value, promise)
        } else {
            self.eventLoop.execute { body(handler.value, promise) }
        }
        return promise.futureResult
    }
}

extension MessageKind {
    /// The opcode that starts a message of this kind.
    var opcode: Opcode {
        switch self {
        case .text: .text
        case .binary: .binary
        }
    }
}
