import NIOCore
import WebSocketCore

extension ChannelPipeline.SynchronousOperations {
    /// Installs the WebSocket handler with the **callback API** (the fastest path) on a channel whose opening
    /// handshake is done.
    ///
    /// Call on the channel's event loop, after the HTTP handlers are removed, with the TLS handler (if any)
    /// still in front. The handler becomes active at once on an active channel: `webSocketDidOpen` is called
    /// and `leftoverBytes` are processed before this returns.
    ///
    /// - Parameters:
    ///   - role: `.server` after accepting an upgrade (expects masked frames, sends unmasked), `.client` after
    ///     a successful 101 (masks what it sends, RFC 6455 §5.3).
    ///   - configuration: protocol limits and buffering (see ``WebSocketConfiguration``).
    ///   - subprotocol: the subprotocol agreed in the handshake, reported to the application.
    ///   - leftoverBytes: bytes read behind the HTTP head (frames the peer sent right after the handshake);
    ///     they are processed before anything read later. Pass nil or an empty buffer when there are none.
    ///   - registry: a registry to join for graceful shutdown (``WebSocketConnectionRegistry/closeAll(code:reason:)``).
    ///   - codec: the negotiated per-message extension (e.g. `PerMessageDeflateCodec`), which claims RSV1; whole
    ///     messages are then sent encoded (one copy through the core's output queue) and fragments uncompressed.
    ///   - delegate: receives events on the event loop with borrowed payloads (see ``WebSocketDelegate``).
    /// - Returns: the context to send with; keep it to send outside callbacks (on the event loop).
    /// - Throws: what `addHandler` throws (for example when the channel is already closed).
    @discardableResult
    public func addWebSocketHandler(
        role: Role,
        configuration: WebSocketConfiguration = .init(),
        subprotocol: String? = nil,
        leftoverBytes: ByteBuffer? = nil,
        registry: WebSocketConnectionRegistry? = nil,
        codec: (any MessageCodec)? = nil,
        delegate: some WebSocketDelegate
    ) throws -> WebSocketContext {
        let handler = WebSocketHandler(
            eventLoop: self.eventLoop,
            role: role,
            configuration: configuration,
            subprotocol: subprotocol,
            leftoverBytes: leftoverBytes,
            registry: registry,
            codec: codec,
            delegate: delegate
        )
        try self.addHandler(handler)
        return WebSocketContext(handler: handler, channel: try self.context(handler: handler).channel)
    }

    /// Installs the WebSocket handler with the **async API** and returns the ``WebSocket``.
    ///
    /// Same placement rules and parameters as
    /// ``addWebSocketHandler(role:configuration:subprotocol:leftoverBytes:registry:codec:delegate:)``. Messages are
    /// always delivered whole (`configuration.connection.delivery` is forced to `.wholeMessages`); at most
    /// ``WebSocketConfiguration/inboundMessageBufferLimit`` of them wait for the consumer before reading stops.
    /// Hand the returned value to a task that iterates ``WebSocket/messages``.
    public func addWebSocket(
        role: Role,
        configuration: WebSocketConfiguration = .init(),
        subprotocol: String? = nil,
        leftoverBytes: ByteBuffer? = nil,
        registry: WebSocketConnectionRegistry? = nil,
        codec: (any MessageCodec)? = nil
    ) throws -> WebSocket {
        var configuration = configuration
        configuration.connection.delivery = .wholeMessages
        let limit = max(configuration.inboundMessageBufferLimit, 1)
        let box = ProducerDelegate.WeakHandler()
        let eventLoop = self.eventLoop
        let sequence = WebSocketInboundMessages.Producer.makeSequence(
            elementType: WebSocketMessage.self,
            backPressureStrategy: .init(lowWatermark: limit / 2, highWatermark: limit),
            finishOnDeinit: false,
            delegate: ProducerDelegate(eventLoop: eventLoop, box: NIOLoopBound(box, eventLoop: eventLoop))
        )
        let bridge = AsyncMessageBridge(source: sequence.source)
        let handler = WebSocketHandler(
            eventLoop: self.eventLoop,
            role: role,
            configuration: configuration,
            subprotocol: subprotocol,
            leftoverBytes: leftoverBytes,
            registry: registry,
            codec: codec,
            delegate: bridge
        )
        box.handler = handler
        box.bridge = bridge
        try self.addHandler(handler)
        return WebSocket(
            channel: try self.context(handler: handler).channel,
            subprotocol: subprotocol,
            messages: WebSocketInboundMessages(producer: sequence.sequence),
            handler: handler
        )
    }
}
