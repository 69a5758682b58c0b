import NIOCore
import WebSocketCore

extension ChannelPipeline.SynchronousOperations {
    /// Installs the WebSocket handler with the **delegate API** (the fastest path) on a channel whose opening
    /// handshake is done.
    ///
    /// Call on the channel's event loop, after the HTTP handlers are removed, with the TLS handler (if any)
    /// still in front. The handler becomes active at once on an active channel: `webSocketDidOpen` is called
    /// and `leftoverBytes` are processed before this returns.
    ///
    /// - Parameters:
    ///   - role: `.server` after accepting an upgrade (expects masked frames, sends unmasked), `.client` after
    ///     a successful 101 (masks what it sends, RFC 6455 §5.3).
    ///   - configuration: protocol limits, buffering, logger and metrics (see ``WebSocketConfiguration``).
    ///   - subprotocol: the subprotocol agreed in the handshake, reported to the application.
    ///   - leftoverBytes: bytes read behind the HTTP head (frames the peer sent right after the handshake);
    ///     they are processed before anything read later. Pass nil or an empty buffer when there are none.
    ///   - registry: a registry to join for graceful shutdown (``WebSocketConnectionRegistry/closeAll(code:reason:)``).
    ///   - codec: the negotiated per-message extension (e.g. `PerMessageDeflateCodec`), which claims RSV1; whole
    ///     messages are then sent encoded (one copy through the core's output queue) and fragments uncompressed.
    ///   - delegate: receives events on the event loop with borrowed payloads (see ``WebSocketDelegate``).
    /// - Returns: the context to send with on the event loop; its ``WebSocketDelegateContext/sendHandle`` sends
    ///   from anywhere.
    /// - Throws: what `addHandler` throws (for example when the channel is already closed); the delegate is then
    ///   never called.
    @discardableResult
    public func addWebSocketDelegate(
        role: Role,
        configuration: WebSocketConfiguration = .init(),
        subprotocol: String? = nil,
        leftoverBytes: ByteBuffer? = nil,
        registry: WebSocketConnectionRegistry? = nil,
        codec: (any MessageCodec)? = nil,
        delegate: some WebSocketDelegate
    ) throws -> WebSocketDelegateContext {
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
        let channel = try self.install(handler)
        return WebSocketDelegateContext(handler: handler, channel: channel)
    }

    /// Installs the WebSocket handler with the **async API** and returns the ``WebSocket``.
    ///
    /// Same placement rules and parameters as
    /// ``addWebSocketDelegate(role:configuration:subprotocol:leftoverBytes:registry:codec:delegate:)``. Messages
    /// are delivered whole, or as pieces when `configuration.connection.delivery` is `.streaming` (see
    /// ``WebSocketMessage/isFinal``); at most ``WebSocketConfiguration/inboundMessageBufferLimit`` elements wait
    /// for the consumer before reading stops.
    /// Hand the returned value to a task that iterates ``WebSocket/messages`` (or calls
    /// ``WebSocket/discardInboundMessages()`` if it only sends).
    /// - Throws: what `addHandler` throws; ``WebSocket/closeStatus`` is then 1006.
    public func addAsyncWebSocket(
        role: Role,
        configuration: WebSocketConfiguration = .init(),
        subprotocol: String? = nil,
        leftoverBytes: ByteBuffer? = nil,
        registry: WebSocketConnectionRegistry? = nil,
        codec: (any MessageCodec)? = nil
    ) throws -> WebSocket {
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
        let channel: any Channel
        do {
            channel = try self.install(handler)
        } catch {
            sequence.source.finish()
            throw error
        }
        return WebSocket(
            channel: channel,
            subprotocol: subprotocol,
            messages: WebSocketInboundMessages(producer: sequence.sequence),
            handler: handler
        )
    }

    /// Adds the handler; on failure completes its close promise so nothing waits on it forever.
    private func install(_ handler: WebSocketHandler) throws -> any Channel {
        do {
            try self.addHandler(handler)
            return try self.context(handler: handler).channel
        } catch {
            handler.installationFailed(error)
            throw error
        }
    }
}
