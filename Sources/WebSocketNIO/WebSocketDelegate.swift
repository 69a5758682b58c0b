import NIOCore
import WebSocketCore

/// The low-level callback API: the fastest way to consume a WebSocket.
///
/// All methods are called on the channel's event loop, in wire order, from inside the handler's read loop.
/// Payload pointers are **borrowed**: they point into the receive buffer (unmasked in place) or into the
/// core's reassembly buffer and are valid only until the callback returns; they must not be captured. Copy
/// what you keep (`ByteBuffer(bytes:)`, ``WebSocketContext/send(_:copying:fin:)``) *before* calling any
/// other method on the ``WebSocketContext``, since that may reuse the core's storage.
///
/// Every method has an empty default implementation except message delivery.
public protocol WebSocketDelegate {
    /// The handler is installed on an active channel; sends are possible from here on.
    func webSocketDidOpen(_ webSocket: WebSocketContext)

    /// A whole data message (`Connection.Configuration.delivery == .wholeMessages`, the default).
    /// Text payloads are valid UTF-8 (the core validates them, RFC 6455 §8.1).
    func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    )

    /// A piece of a data message (`delivery == .streaming`). `isFirst` marks the first piece of a message,
    /// `isFinal` its last; text pieces are validated incrementally (a code point may straddle pieces).
    func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    )

    /// A ping (RFC 6455 §5.5.2). With `autoPong` (the default) the pong is already queued.
    func webSocket(_ webSocket: WebSocketContext, didReceivePing payload: UnsafeRawBufferPointer)

    /// A pong (RFC 6455 §5.5.3), solicited or not.
    func webSocket(_ webSocket: WebSocketContext, didReceivePong payload: UnsafeRawBufferPointer)

    /// The peer's close frame (RFC 6455 §5.5.1); code 1005 when it carried none. The echo is already queued.
    /// ``webSocket(_:didCloseWith:)`` follows once the transport is closed.
    func webSocket(_ webSocket: WebSocketContext, didReceiveClose status: CloseStatus)

    /// The connection is over and the channel closed. Called exactly once. `status` is the peer's close, the
    /// code we failed the connection with (1002, 1007, 1009...), or 1006 (abnormal closure: the TCP
    /// connection ended or the heartbeat found the peer silent without a close handshake).
    func webSocket(_ webSocket: WebSocketContext, didCloseWith status: CloseStatus)
}

extension WebSocketDelegate {
    public func webSocketDidOpen(_ webSocket: WebSocketContext) {}
    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {}
    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceivePing payload: UnsafeRawBufferPointer
    ) {}
    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceivePong payload: UnsafeRawBufferPointer
    ) {}
    public func webSocket(_ webSocket: WebSocketContext, didReceiveClose status: CloseStatus) {}
    public func webSocket(_ webSocket: WebSocketContext, didCloseWith status: CloseStatus) {}
}

/// A ``WebSocketDelegate`` made of closures, for callers that prefer not to declare a type.
///
/// Closures run on the event loop with borrowed payloads (see ``WebSocketDelegate``).
public struct WebSocketCallbacks: WebSocketDelegate {
    /// Called once the handler is active.
    public var onOpen: ((WebSocketContext) -> Void)?
    /// Called for every whole message (and, in streaming mode, never).
    public var onMessage: ((WebSocketContext, MessageKind, UnsafeRawBufferPointer) -> Void)?
    /// Called for every message piece in streaming mode: (context, kind, payload, isFirst, isFinal).
    public var onFragment: ((WebSocketContext, MessageKind, UnsafeRawBufferPointer, Bool, Bool) -> Void)?
    /// Called for every ping.
    public var onPing: ((WebSocketContext, UnsafeRawBufferPointer) -> Void)?
    /// Called for every pong.
    public var onPong: ((WebSocketContext, UnsafeRawBufferPointer) -> Void)?
    /// Called when the peer's close frame arrives.
    public var onCloseFrame: ((WebSocketContext, CloseStatus) -> Void)?
    /// Called once when the connection is over.
    public var onClosed: ((WebSocketContext, CloseStatus) -> Void)?

    /// Creates callbacks; every closure is optional.
    public init(
        onOpen: ((WebSocketContext) -> Void)? = nil,
        onMessage: ((WebSocketContext, MessageKind, UnsafeRawBufferPointer) -> Void)? = nil,
        onFragment: ((WebSocketContext, MessageKind, UnsafeRawBufferPointer, Bool, Bool) -> Void)? =
            nil,
        onPing: ((WebSocketContext, UnsafeRawBufferPointer) -> Void)? = nil,
        onPong: ((WebSocketContext, UnsafeRawBufferPointer) -> Void)? = nil,
        onCloseFrame: ((WebSocketContext, CloseStatus) -> Void)? = nil,
        onClosed: ((WebSocketContext, CloseStatus) -> Void)? = nil
    ) {
        self.onOpen = onOpen
        self.onMessage = onMessage
        self.onFragment = onFragment
        self.onPing = onPing
        self.onPong = onPong
        self.onCloseFrame = onCloseFrame
        self.onClosed = onClosed
    }

    public func webSocketDidOpen(_ webSocket: WebSocketContext) {
        self.onOpen?(webSocket)
    }

    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        self.onMessage?(webSocket, kind, payload)
    }

    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {
        self.onFragment?(webSocket, kind, payload, isFirst, isFinal)
    }

    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceivePing payload: UnsafeRawBufferPointer
    ) {
        self.onPing?(webSocket, payload)
    }

    public func webSocket(
        _ webSocket: WebSocketContext,
        didReceivePong payload: UnsafeRawBufferPointer
    ) {
        self.onPong?(webSocket, payload)
    }

    public func webSocket(_ webSocket: WebSocketContext, didReceiveClose status: CloseStatus) {
        self.onCloseFrame?(webSocket, status)
    }

    public func webSocket(_ webSocket: WebSocketContext, didCloseWith status: CloseStatus) {
        self.onClosed?(webSocket, status)
    }
}

/// The sending side of the callback API: a handle on one WebSocket, valid on its event loop only.
///
/// It is handed to every ``WebSocketDelegate`` callback and returned by the installer; keep it to send later
/// (from the event loop: `context.eventLoop.execute { ... }`). Sends from inside a callback are flushed once
/// the current read is processed (batched); sends from elsewhere are flushed at once.
public struct WebSocketContext {
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

    /// False while the outbound queue is above the configured high-water mark: a producer of many messages
    /// should wait for `channelWritabilityChanged`-style signals (or use the async API, which waits for it).
    public var isWritable: Bool { self.channel.isWritable }

    /// Sends a message or a fragment whose payload is a `ByteBuffer` (its readable bytes).
    ///
    /// Zero-copy on the server side: the header goes into a small buffer and the payload follows as a second
    /// write (one `writev`). The client masks the payload (RFC 6455 §5.3) in place when the buffer is uniquely
    /// owned, else on a copy (copy-on-write). For fragments pass `fin: false` and later send the rest with
    /// ``sendFrame(_:_:fin:)`` and `.continuation`.
    /// - Throws: ``WebSocketError/sendFailed(_:)`` when the core refuses (closing, fragment order...), or
    ///   ``WebSocketError/connectionClosed`` when the channel is gone.
    public func send(_ kind: MessageKind, _ payload: ByteBuffer, fin: Bool = true)
        throws(WebSocketError)
    {
        try self.handler.sendFrame(kind.opcode, payload, fin: fin)
    }

    /// Sends a UTF-8 text message.
    public func send(text: String) throws(WebSocketError) {
        try self.handler.sendFrame(.text, self.allocator.buffer(string: text), fin: true)
    }

    /// Sends a message whose payload is borrowed memory (for example a payload received in a callback, to echo
    /// it). The bytes are copied once, right behind the frame header, into a single outbound buffer.
    public func send(_ kind: MessageKind, copying payload: UnsafeRawBufferPointer, fin: Bool = true)
        throws(WebSocketError)
    {
        try self.handler.sendFrame(kind.opcode, copying: payload, fin: fin)
    }

    /// Sends one data frame: `.text` / `.binary` starts a message, `.continuation` continues it; `fin` ends it
    /// (RFC 6455 §5.4). Control opcodes are refused by the core; use ``ping(_:)`` and ``close(code:reason:)``.
    public func sendFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool) throws(WebSocketError) {
        try self.handler.sendFrame(opcode, payload, fin: fin)
    }

    /// Sends a ping with up to 125 bytes of payload (RFC 6455 §5.5.2).
    public func ping(_ payload: ByteBuffer = ByteBuffer()) throws(WebSocketError) {
        try self.handler.ping(payload)
    }

    /// Sends an unsolicited pong (a unidirectional heartbeat, RFC 6455 §5.5.3), or a manual reply when
    /// `autoPong` is off. At most 125 bytes.
    public func pong(_ payload: ByteBuffer = ByteBuffer()) throws(WebSocketError) {
        try self.handler.pong(payload)
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2) with a code that may be sent (§7.4) and a UTF-8 reason
    /// of at most 123 bytes. ``WebSocketDelegate/webSocket(_:didCloseWith:)`` follows when it completes or
    /// times out (`closeTimeout`).
    public func close(code: CloseCode = .normalClosure, reason: String = "") throws(WebSocketError) {
        try self.handler.close(code: code, reason: reason)
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
