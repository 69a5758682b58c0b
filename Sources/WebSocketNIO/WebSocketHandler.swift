import CoreMetrics
import Logging
import NIOCore
import WebSocketCore

/// The channel handler that drives a `WebSocketCore.Connection` on a NIO pipeline (RFC 6455 §5–§7).
///
/// Install it with ``NIOCore/ChannelPipeline/SynchronousOperations/addWebSocketDelegate(role:configuration:subprotocol:leftoverBytes:registry:codec:delegate:)``
/// or ``NIOCore/ChannelPipeline/SynchronousOperations/addAsyncWebSocket(role:configuration:subprotocol:leftoverBytes:registry:codec:)``
/// once the opening handshake is done; it must be the last handler that sees raw bytes (after TLS, after the
/// HTTP handlers are removed).
///
/// - Inbound (this file): each `ByteBuffer` is handed whole to the core, which consumes every byte (a partial
///   frame header is kept inside its parser); payloads are unmasked in place (in a private copy of the read
///   unless ``WebSocketConfiguration/unmasksInReceivedBuffer``) and go straight to the ``WebSocketDelegate`` as
///   borrowed pointers. A message that arrives in pieces (fragments, several reads) is joined in a buffer of the
///   handler (`WebSocketHandler+Buffers.swift`), which a send of the same bytes writes back without a copy.
/// - Outbound (`WebSocketHandler+Outbound.swift`): the core's pending output (pongs, close echoes) is written
///   first, then data frames as a header buffer plus the payload buffer (vectored write). Small frames sent
///   while a read is processed are gathered in one buffer, written at the end of the read; everything is
///   flushed once per read burst.
/// - Closing and timers (`WebSocketHandler+Close.swift`): FIN after the last byte, half-close, the forced
///   close after `closeTimeout`, `tick(now:)` at `Connection.nextDeadline`.
/// - Backpressure: while the channel is unwritable (outbound above ``WebSocketConfiguration/outboundWaterMark``)
///   or the async consumer lags, `read()` is held back; it is forwarded once both clear.
///
/// All state is confined to the event loop; the type is not `Sendable`.
public final class WebSocketHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    struct ReadPause: OptionSet {
        var rawValue: UInt8
        static let unwritable = ReadPause(rawValue: 1 << 0)
        static let consumer = ReadPause(rawValue: 1 << 1)
    }

    // Exclusivity: the fields on the per-message path are marked `@exclusivity(unchecked)` in release builds,
    // where the run-time check of each access (`swift_beginAccess`, a thread-local lookup) cost about a sixth of
    // the server's user-space CPU time per small echoed message (BENCHMARKS.md, issue #12). No access to them
    // can overlap another: every access is a single call that does not call out (the core returns one event
    // per `receive` call and the event is delivered after that call ends; no closure that touches `self` is
    // passed to them), and everything runs on the event loop. Debug builds (the whole test suite, the
    // conformance and interop runs) keep the checks, so a change that breaks this traps there.
    let eventLoop: any EventLoop
    let subprotocol: String?
    let role: Role
    // The few fields of `WebSocketConfiguration` read after `init` (the protocol options live in the core's
    // configuration, logger and metrics below): not the whole value, which would cost each idle connection its
    // size.
    let outboundWaterMark: ChannelOptions.Types.WriteBufferWaterMark
    let smallPayloadCopyLimit: Int
    let unmasksInReceivedBuffer: Bool
    #if DEBUG
    var connection: Connection
    #else
    @exclusivity(unchecked) var connection: Connection
    #endif
    var delegate: (any WebSocketDelegate)?
    weak var registry: WebSocketConnectionRegistry?
    #if DEBUG
    var context: ChannelHandlerContext?
    #else
    @exclusivity(unchecked) var context: ChannelHandlerContext?
    #endif
    /// The configured logger, shared with every connection (no per-connection copy of its metadata: the peer
    /// address and route path are added at each log call, `logMetadata(_:)`).
    let logger: Logger
    /// The route path the server accepted the connection on, for log messages (`WebSocketConfiguration.routePath`).
    let routePath: String?
    let metrics: WebSocketMetrics?

    /// The bytes the peer sent behind the opening handshake, processed when the handler becomes active.
    var leftoverBytes: ByteBuffer?
    /// The read being processed, while the core runs over it.
    #if DEBUG
    var currentRead: ByteBuffer?
    #else
    @exclusivity(unchecked) var currentRead: ByteBuffer?
    #endif
    var readPause: ReadPause = []
    var readHeldBack = false
    #if DEBUG
    var isProcessingInbound = false
    #else
    @exclusivity(unchecked) var isProcessingInbound = false
    #endif
    #if DEBUG
    var needsFlush = false
    #else
    @exclusivity(unchecked) var needsFlush = false
    #endif
    var started = false
    #if DEBUG
    var transportClosing = false
    #else
    @exclusivity(unchecked) var transportClosing = false
    #endif
    /// The peer's input side is closed: after the final flush, close fully instead of half-closing.
    var fullCloseAfterFlush = false
    /// Our output side is shut down (FIN sent); the channel closes when the peer's FIN arrives.
    var outputHalfClosed = false
    var timer: Scheduled<Void>?
    var timerDeadline: Instant?
    var forcedCloseTimer: Scheduled<Void>?
    var writabilityWaiters: [EventLoopPromise<Void>] = []
    /// Pending output collected while a read is processed (one pong per ping, RFC 6455 §5.5.3), written once.
    #if DEBUG
    var outputBatch: ByteBuffer?
    #else
    @exclusivity(unchecked) var outputBatch: ByteBuffer?
    #endif
    /// The peer's close frame arrived (for the close-code metric's origin).
    var peerClosed = false
    /// The I/O or TLS error that ended the transport, kept for the final status.
    var transportError: (any Error)?
    /// Made on the first use of ``closed`` (a delegate that never asks costs no promise per connection).
    var closedPromise: EventLoopPromise<CloseStatus>?
    /// The final status was handed to ``closed``'s waiters (or would have been, had there been any).
    var closedDelivered = false

    /// The final status once the connection is over.
    var finalStatus: CloseStatus?

    /// Whether the application gets whole messages (`delivery == .wholeMessages`): joined here from the core's
    /// pieces.
    let joinsMessages: Bool
    /// Whether a per-message codec was negotiated (read once: the core's existential is not copied per send).
    let hasCodec: Bool
    /// Buffers kept between reads and sends while the connection is busy, released when it goes idle
    /// (`WebSocketHandler+Buffers.swift`).
    #if DEBUG
    var buffers = ReusableBuffers()
    #else
    @exclusivity(unchecked) var buffers = ReusableBuffers()
    #endif

    /// Completed with the final close status when the connection is over; never failed.
    /// Call on the event loop.
    var closed: EventLoopFuture<CloseStatus> {
        self.eventLoop.assertInEventLoop()
        if let promise = self.closedPromise { return promise.futureResult }
        if self.closedDelivered, let status = self.finalStatus {
            return self.eventLoop.makeSucceededFuture(status)
        }
        let promise = self.eventLoop.makePromise(of: CloseStatus.self)
        self.closedPromise = promise
        return promise.futureResult
    }

    init(
        eventLoop: any EventLoop,
        role: Role,
        configuration: WebSocketConfiguration,
        subprotocol: String?,
        leftoverBytes: ByteBuffer?,
        registry: WebSocketConnectionRegistry?,
        codec: (any MessageCodec)? = nil,
        delegate: any WebSocketDelegate
    ) {
        self.eventLoop = eventLoop
        self.role = role
        self.outboundWaterMark = configuration.outboundWaterMark
        self.smallPayloadCopyLimit = configuration.smallPayloadCopyLimit
        self.unmasksInReceivedBuffer = configuration.unmasksInReceivedBuffer
        self.routePath = configuration.routePath
        // Whole messages are joined here, in a `ByteBuffer` that can be written back or handed out without a
        // copy (`joinPiece`); the core streams the pieces (same checks and limits, RFC 6455 §5.4, §8.1).
        var core = configuration.connection
        self.joinsMessages = core.delivery == .wholeMessages
        core.delivery = .streaming
        self.connection = Connection(
            role: role,
            configuration: core,
            maskKeyGenerator: SystemRandomMaskKeyGenerator(),
            codec: codec
        )
        // The core's own reassembly buffer (decompressed messages) is kept for the next message while the
        // connection is busy, and released when it goes idle (`releaseIdleBuffers`).
        self.connection.retainedReassemblyCapacity = max(
            self.connection.retainedReassemblyCapacity,
            configuration.connection.maxMessageLength
        )
        self.hasCodec = codec != nil
        self.subprotocol = subprotocol
        self.registry = registry
        self.delegate = delegate
        self.logger = configuration.logger
        self.metrics = configuration.metrics
        if let leftoverBytes, leftoverBytes.readableBytes > 0 {
            self.leftoverBytes = leftoverBytes
        }
    }

    /// Completes the close promise when the handler could not be added to the pipeline, so that nobody waits
    /// on it forever (and NIO does not report a leaked promise).
    func installationFailed(_ error: any Error) {
        guard self.finalStatus == nil else { return }
        let status = CloseStatus(code: .abnormalClosure, reason: "WebSocket handler not installed: \(error)")
        self.finalStatus = status
        self.delegate = nil
        self.closedDelivered = true
        self.closedPromise?.succeed(status)
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // An HTTP/2 stream channel (RFC 8441) takes its water marks from the HTTP/2 stream configuration and traps
        // on setting them.
        if let options = context.channel.syncOptions, !HTTP2StreamBytesHandler.isInstalled(in: context.pipeline) {
            try? options.setOption(
                ChannelOptions.writeBufferWaterMark,
                value: self.outboundWaterMark
            )
        }
        if context.channel.isActive {
            self.start(context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.finish()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.transportClosing else {
            return  // the transport is closing: whatever the peer still sends is dropped
        }
        self.processInbound(context: context, buffer: self.unwrapInboundIn(data))
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        self.flushIfNeeded(context: context)
        self.noteBufferUse(context: context)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        let isWritable = context.channel.isWritable
        if isWritable {
            self.resumeReading(.unwritable)
            let waiters = self.writabilityWaiters
            self.writabilityWaiters = []
            for waiter in waiters {
                waiter.succeed()
            }
        } else {
            self.readPause.insert(.unwritable)
        }
        if self.finalStatus == nil {
            self.delegate?.webSocket(
                WebSocketDelegateContext(handler: self, channel: context.channel),
                writabilityChanged: isWritable
            )
        }
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The peer closed its side (half-closure allowed on the channel): nothing more can arrive. Tell the
            // core (1006 unless the close handshake completed), write what is left, then close fully.
            self.fullCloseAfterFlush = true
            self.connection.receiveEOF()
            self.afterCoreCall(context: context)
            self.closeTransport(context: context)
            if self.outputHalfClosed {
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // I/O or TLS errors end the transport; the status becomes 1006 (with this error as its reason) unless a
        // close handshake completed.
        if self.transportError == nil && self.finalStatus == nil {
            self.transportError = error
        }
        context.close(promise: nil)
    }

    public func read(context: ChannelHandlerContext) {
        if self.readPause.isEmpty {
            context.read()
        } else {
            self.readHeldBack = true
        }
    }

    // MARK: - Inbound

    private func start(context: ChannelHandlerContext) {
        guard !self.started else { return }
        self.started = true
        self.registry?.register(self)
        self.metrics?.openConnections.increment()
        if !context.channel.isWritable {
            self.readPause.insert(.unwritable)
        }
        self.connection.tick(now: Self.now())
        self.logger.debug(
            "WebSocket open",
            metadata: self.logMetadata(["subprotocol": "\(self.subprotocol ?? "")"])
        )
        self.delegate?.webSocketDidOpen(WebSocketDelegateContext(handler: self, channel: context.channel))
        if let leftover = self.leftoverBytes {
            self.leftoverBytes = nil
            self.processInbound(context: context, buffer: leftover)
        }
        self.afterCoreCall(context: context)
        self.flushIfNeeded(context: context)
    }

    private func processInbound(context: ChannelHandlerContext, buffer: ByteBuffer) {
        var buffer = buffer
        let copies = !self.unmasksInReceivedBuffer
        if copies {
            // Strict value semantics: unmask in a private copy of the read (the copy that copy-on-write would
            // make anyway, since the pipeline still references NIO's buffer), never in storage NIO may share.
            // The copy goes into a scratch buffer reused from read to read while the connection is busy.
            buffer = self.buffers.privateCopy(of: buffer, allocator: context.channel.allocator)
        }
        self.isProcessingInbound = true
        self.currentRead = buffer
        let webSocket = WebSocketDelegateContext(handler: self, channel: context.channel)
        // The core unmasks in place in storage this handler owns (see above and
        // `WebSocketConfiguration.unmasksInReceivedBuffer`); `currentRead` lets the async API slice payloads
        // out of it instead of copying them.
        buffer.withUnsafeReadableBytes { readable in
            self.receive(UnsafeMutableRawBufferPointer(mutating: readable), webSocket: webSocket, context: context)
        }
        self.currentRead = nil
        self.isProcessingInbound = false
        if copies {
            self.buffers.readScratch = buffer
        }
        self.afterCoreCall(context: context)
    }

    /// A slice of the read being processed that holds exactly `payload`, when the payload lies in it (a message
    /// or fragment that arrived in one read and was not reassembled); nil otherwise. The slice shares the read's
    /// storage (no copy), so it keeps the whole read alive.
    func sliceOfCurrentRead(_ payload: UnsafeRawBufferPointer) -> ByteBuffer? {
        guard let read = self.currentRead, let base = payload.baseAddress else { return nil }
        return read.withUnsafeReadableBytes { readable -> ByteBuffer? in
            guard let start = readable.baseAddress, base >= start, base + payload.count <= start + readable.count
            else { return nil }
            return read.getSlice(at: read.readerIndex + (base - start), length: payload.count)
        }
    }

    /// Feeds `bytes` to the core, delivering each event. The core consumes every byte it is given (a partial
    /// frame stays inside its parser), so nothing is kept here between reads.
    private func receive(
        _ bytes: UnsafeMutableRawBufferPointer,
        webSocket: WebSocketDelegateContext,
        context: ChannelHandlerContext
    ) {
        // One `receive` call per event, so that the core is not being accessed while a delegate method runs
        // (a delegate that sends from `didReceiveMessage` re-enters `self.connection`: an exclusivity violation).
        var rest = bytes
        do {
            while true {
                let (consumed, event) = try self.connection.receive(rest)
                rest = UnsafeMutableRawBufferPointer(rebasing: rest[consumed...])
                guard let event else {
                    // The core never leaves bytes behind (a partial header or payload is kept or delivered),
                    // so no read is ever carried over to the next one here.
                    assert(rest.isEmpty, "Connection.receive returned no event with bytes left")
                    break
                }
                guard !self.transportClosing else { continue }
                self.deliver(event, to: webSocket, context: context)
            }
        } catch {
            // The core queued the close frame with the matching code and wants the transport closed.
            self.logger.debug("WebSocket protocol violation", metadata: self.logMetadata(["error": "\(error)"]))
        }
    }

    private func deliver(
        _ event: Connection.Event,
        to webSocket: WebSocketDelegateContext,
        context: ChannelHandlerContext
    ) {
        switch event {
        case .message(let kind, let payload):
            self.deliverMessage(kind, payload, to: webSocket)
        case .fragment(let kind, let payload, let isFirst, let isFinal) where self.joinsMessages:
            self.joinPiece(kind, payload, isFirst: isFirst, isFinal: isFinal, to: webSocket)
        case .fragment(let kind, let payload, let isFirst, let isFinal):
            if let metrics = self.metrics {
                if isFirst { metrics.messagesIn.increment() }
                metrics.bytesIn.increment(by: payload.count)
            }
            self.delegate?.webSocket(
                webSocket,
                didReceiveFragment: kind,
                payload: payload,
                isFirst: isFirst,
                isFinal: isFinal
            )
        case .ping(let payload):
            self.delegate?.webSocket(webSocket, didReceivePing: payload)
            // Take the pong now: the core keeps one pending pong and a later ping would replace it.
            self.collectPendingOutput(context: context)
        case .pong(let payload):
            self.delegate?.webSocket(webSocket, didReceivePong: payload)
        case .close(let status):
            self.peerClosed = true
            self.delegate?.webSocket(webSocket, didReceiveClose: status)
        }
    }

    func deliverMessage(
        _ kind: MessageKind,
        _ payload: UnsafeRawBufferPointer,
        to webSocket: WebSocketDelegateContext
    ) {
        if let metrics = self.metrics {
            metrics.messagesIn.increment()
            metrics.bytesIn.increment(by: payload.count)
        }
        self.delegate?.webSocket(webSocket, didReceiveMessage: kind, payload: payload)
    }

    /// `metadata` plus the connection's peer address (from the channel, which keeps it after the close) and route
    /// path, unless the logger's own metadata already names them (an HTTP/2 stream's logger does). Built only when
    /// a message is logged.
    func logMetadata(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var metadata = metadata
        if self.logger[metadataKey: "peer"] == nil, let peer = self.context?.channel.remoteAddress {
            metadata["peer"] = "\(peer)"
        }
        if let path = self.routePath, self.logger[metadataKey: "path"] == nil {
            metadata["path"] = "\(path)"
        }
        return metadata
    }

    // MARK: - Read backpressure

    /// Stops forwarding `read()` because the async consumer lags. Ignored once the close handshake started:
    /// the peer's close frame must be read whatever the consumer does.
    func pauseReadingForConsumer() {
        guard self.connection.state == .open else { return }
        self.readPause.insert(.consumer)
    }

    /// Resumes reading once the async consumer caught up (or went away).
    func resumeReadingForConsumer() {
        self.resumeReading(.consumer)
    }

    func resumeReading(_ reason: ReadPause) {
        self.readPause.remove(reason)
        if self.readPause.isEmpty, self.readHeldBack, let context = self.context {
            self.readHeldBack = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension WebSocketHandler: Sendable {}
