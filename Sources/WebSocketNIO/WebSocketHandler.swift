import NIOCore
import WebSocketCore

/// The channel handler that drives a `WebSocketCore.Connection` on a NIO pipeline (RFC 6455 §5–§7).
///
/// Install it with ``NIOCore/ChannelPipeline/SynchronousOperations/addWebSocketHandler(role:configuration:subprotocol:leftoverBytes:registry:codec:delegate:)``
/// or ``NIOCore/ChannelPipeline/SynchronousOperations/addWebSocket(role:configuration:subprotocol:leftoverBytes:registry:codec:)``
/// once the opening handshake is done; it must be the last handler that sees raw bytes (after TLS, after the
/// HTTP handlers are removed).
///
/// - Inbound: each `ByteBuffer` is handed to the core with `withUnsafeMutableReadableBytes`; the core unmasks
///   in place and reports borrowed payloads, which go straight to the ``WebSocketDelegate``. Bytes the core
///   did not consume (a partial frame) are kept and the next read is appended to them; otherwise no inbound
///   byte is copied.
/// - Outbound: the core's pending output (pongs, close echoes) is written first, then data frames as a header
///   buffer plus the payload buffer (vectored write). Writes issued while a read is processed are flushed once
///   at the end of the read.
/// - Backpressure: while the channel is unwritable (outbound above ``WebSocketConfiguration/outboundWaterMark``)
///   or the async consumer lags, `read()` is held back; it is forwarded once both clear.
/// - Timers: a task is scheduled at `Connection.nextDeadline` and calls `tick(now:)` (heartbeat, pong
///   timeout, close timeout). The clock is `NIODeadline.now().uptimeNanoseconds`.
/// - Transport: when the core says `shouldCloseTransport`, pending output is flushed, the output side is shut
///   down (FIN) and the channel closed when the peer closes or after `closeTimeout`. EOF is reported to the
///   core (`receiveEOF`); a connection that ends without a close handshake reports 1006.
///
/// All state is confined to the event loop; the type is not `Sendable`.
public final class WebSocketHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private struct ReadPause: OptionSet {
        var rawValue: UInt8
        static let unwritable = ReadPause(rawValue: 1 << 0)
        static let consumer = ReadPause(rawValue: 1 << 1)
    }

    let eventLoop: any EventLoop
    let subprotocol: String?
    private let role: Role
    private let configuration: WebSocketConfiguration
    private var connection: Connection
    private var delegate: (any WebSocketDelegate)?
    private weak var registry: WebSocketConnectionRegistry?
    private var context: ChannelHandlerContext?

    /// Bytes received but not yet consumed by the core (a partial frame), or the leftover bytes of the
    /// handshake before the handler is active.
    private var unconsumed: ByteBuffer?
    private var readPause: ReadPause = []
    private var readHeldBack = false
    private var isProcessingInbound = false
    private var needsFlush = false
    private var started = false
    private var transportClosing = false
    /// The peer's input side is closed: after the final flush, close fully instead of half-closing.
    private var fullCloseAfterFlush = false
    /// Our output side is shut down (FIN sent); the channel closes when the peer's FIN arrives.
    private var outputHalfClosed = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: Instant?
    private var forcedCloseTimer: Scheduled<Void>?
    private var writabilityWaiters: [EventLoopPromise<Void>] = []
    /// Pending output collected while a read is processed (one pong per ping, RFC 6455 §5.5.3), written once.
    private var outputBatch: ByteBuffer?
    private let closedPromise: EventLoopPromise<CloseStatus>

    /// The final status once the connection is over.
    private(set) var finalStatus: CloseStatus?

    /// Completed with the final close status when the connection is over; never failed.
    var closed: EventLoopFuture<CloseStatus> { self.closedPromise.futureResult }

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
        self.configuration = configuration
        self.connection = Connection(
            role: role,
            configuration: configuration.connection,
            maskKeyGenerator: SystemRandomMaskKeyGenerator(),
            codec: codec
        )
        self.subprotocol = subprotocol
        self.registry = registry
        self.delegate = delegate
        self.closedPromise = eventLoop.makePromise(of: CloseStatus.self)
        if let leftoverBytes, leftoverBytes.readableBytes > 0 {
            self.unconsumed = leftoverBytes
        }
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let options = context.channel.syncOptions {
            try? options.setOption(
                ChannelOptions.writeBufferWaterMark,
                value: self.configuration.outboundWaterMark
            )
        }
        if context.channel.isActive {
            self.start(context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.finish(status: nil)
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        guard !self.transportClosing else {
            return  // the transport is closing: whatever the peer still sends is dropped
        }
        if var unconsumed = self.unconsumed {
            self.unconsumed = nil
            if unconsumed.readerIndex > 0, unconsumed.writableBytes < buffer.readableBytes {
                unconsumed.discardReadBytes()
            }
            unconsumed.writeImmutableBuffer(buffer)
            self.processInbound(context: context, buffer: unconsumed)
        } else {
            self.processInbound(context: context, buffer: buffer)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        self.flushIfNeeded(context: context)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.resumeReading(.unwritable)
            let waiters = self.writabilityWaiters
            self.writabilityWaiters = []
            for waiter in waiters {
                waiter.succeed()
            }
        } else {
            self.readPause.insert(.unwritable)
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
        self.finish(status: nil)
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // I/O or TLS errors end the transport; the status becomes 1006 unless a close handshake completed.
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
        if !context.channel.isWritable {
            self.readPause.insert(.unwritable)
        }
        self.connection.tick(now: Self.now())
        self.delegate?.webSocketDidOpen(WebSocketContext(handler: self, channel: context.channel))
        if let leftover = self.unconsumed {
            self.unconsumed = nil
            self.processInbound(context: context, buffer: leftover)
        }
        self.afterCoreCall(context: context)
        self.flushIfNeeded(context: context)
    }

    private func processInbound(context: ChannelHandlerContext, buffer: ByteBuffer) {
        var buffer = buffer
        self.isProcessingInbound = true
        let webSocket = WebSocketContext(handler: self, channel: context.channel)
        let consumed: Int
        if self.configuration.unmasksInReceivedBuffer {
            // No copy-on-write copy: see `WebSocketConfiguration.unmasksInReceivedBuffer`.
            consumed = buffer.withUnsafeReadableBytes { readable in
                let bytes = UnsafeMutableRawBufferPointer(mutating: readable)
                return self.receiveLoop(bytes, webSocket: webSocket, context: context)
            }
        } else {
            consumed = buffer.withUnsafeMutableReadableBytes { bytes in
                self.receiveLoop(bytes, webSocket: webSocket, context: context)
            }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if buffer.readableBytes > 0 && !self.transportClosing {
            self.unconsumed = buffer
        }
        self.isProcessingInbound = false
        self.afterCoreCall(context: context)
    }

    /// Feeds `bytes` to the core until it has consumed them all, delivering each event; returns the count
    /// consumed (all of them unless the connection is over).
    private func receiveLoop(
        _ bytes: UnsafeMutableRawBufferPointer,
        webSocket: WebSocketContext,
        context: ChannelHandlerContext
    ) -> Int {
        var offset = 0
        while true {
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[offset...])
            let result: (consumed: Int, event: Connection.Event?)
            do {
                result = try self.connection.receive(rest)
            } catch {
                // The core queued the close frame with the matching code and wants the transport closed.
                return bytes.count
            }
            offset += result.consumed
            if let event = result.event {
                self.deliver(event, to: webSocket, context: context)
                if self.transportClosing || self.connection.shouldCloseTransport {
                    return bytes.count  // closed by the delegate or by the close handshake
                }
            } else if result.consumed == 0 || offset == bytes.count {
                return offset
            }
        }
    }

    private func deliver(
        _ event: Connection.Event,
        to webSocket: WebSocketContext,
        context: ChannelHandlerContext
    ) {
        guard let delegate = self.delegate else { return }
        switch event {
        case .message(let kind, let payload):
            delegate.webSocket(webSocket, didReceiveMessage: kind, payload: payload)
        case .fragment(let kind, let payload, let isFirst, let isFinal):
            delegate.webSocket(
                webSocket,
                didReceiveFragment: kind,
                payload: payload,
                isFirst: isFirst,
                isFinal: isFinal
            )
        case .ping(let payload):
            delegate.webSocket(webSocket, didReceivePing: payload)
            // Take the pong now: the core keeps one pending pong and a later ping would replace it.
            self.collectPendingOutput(context: context)
        case .pong(let payload):
            delegate.webSocket(webSocket, didReceivePong: payload)
        case .close(let status):
            delegate.webSocket(webSocket, didReceiveClose: status)
        }
    }

    // MARK: - Read backpressure

    /// Stops forwarding `read()` because the async consumer lags.
    func pauseReadingForConsumer() {
        self.readPause.insert(.consumer)
    }

    /// Resumes reading once the async consumer caught up (or went away).
    func resumeReadingForConsumer() {
        self.resumeReading(.consumer)
    }

    private func resumeReading(_ reason: ReadPause) {
        self.readPause.remove(reason)
        if self.readPause.isEmpty, self.readHeldBack, let context = self.context {
            self.readHeldBack = false
            context.read()
        }
    }

    // MARK: - Outbound

    /// Sends one data frame whose payload is a buffer (see ``WebSocketContext/send(_:_:fin:)``).
    func sendFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool) throws(WebSocketError) {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        if let kind = self.encodedMessageKind(opcode, fin: fin) {
            try payload.withUnsafeReadableBytes { bytes throws(WebSocketError) in
                try self.sendEncoded(kind, bytes, context: context)
            }
            return
        }
        let header: FrameHeader
        do {
            header = try self.connection.makeFrameHeader(
                opcode,
                payloadLength: payload.readableBytes,
                fin: fin
            )
        } catch {
            throw .sendFailed(error)
        }
        self.writePendingOutput(context: context)
        let merge = payload.readableBytes <= self.configuration.smallPayloadCopyLimit
        var out = context.channel.allocator.buffer(
            capacity: header.headerLength + (merge ? payload.readableBytes : 0)
        )
        Self.writeHeader(header, into: &out)
        if merge {
            let payloadStart = out.writerIndex
            out.writeImmutableBuffer(payload)
            if let key = header.maskKey {
                Self.mask(&out, from: payloadStart, key: key)
            }
            context.write(self.wrapOutboundOut(out), promise: nil)
        } else {
            var payload = payload
            if let key = header.maskKey {
                // Copy-on-write: masks in place when the caller gave up the buffer, else on a private copy.
                Self.mask(&payload, from: payload.readerIndex, key: key)
            }
            context.write(self.wrapOutboundOut(out), promise: nil)
            context.write(self.wrapOutboundOut(payload), promise: nil)
        }
        self.needsFlush = true
        self.afterSend(context: context)
    }

    /// Sends one data frame whose payload is borrowed memory: one copy into a buffer behind the header.
    func sendFrame(_ opcode: Opcode, copying payload: UnsafeRawBufferPointer, fin: Bool)
        throws(WebSocketError)
    {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        if let kind = self.encodedMessageKind(opcode, fin: fin) {
            try self.sendEncoded(kind, payload, context: context)
            return
        }
        let header: FrameHeader
        do {
            header = try self.connection.makeFrameHeader(opcode, payloadLength: payload.count, fin: fin)
        } catch {
            throw .sendFailed(error)
        }
        self.writePendingOutput(context: context)
        var out = context.channel.allocator.buffer(capacity: header.headerLength + payload.count)
        Self.writeHeader(header, into: &out)
        let payloadStart = out.writerIndex
        out.writeBytes(payload)
        if let key = header.maskKey {
            Self.mask(&out, from: payloadStart, key: key)
        }
        context.write(self.wrapOutboundOut(out), promise: nil)
        self.needsFlush = true
        self.afterSend(context: context)
    }

    /// With a negotiated per-message codec (permessage-deflate), whole messages go through the core's encoding
    /// send (copied once into the output queue); fragments are sent uncompressed (RFC 7692 allows both).
    private func encodedMessageKind(_ opcode: Opcode, fin: Bool) -> MessageKind? {
        guard fin, self.connection.codec != nil else { return nil }
        switch opcode {
        case .text: return .text
        case .binary: return .binary
        default: return nil
        }
    }

    private func sendEncoded(
        _ kind: MessageKind,
        _ payload: UnsafeRawBufferPointer,
        context: ChannelHandlerContext
    ) throws(WebSocketError) {
        do {
            try self.connection.send(kind, payload)
        } catch {
            throw .sendFailed(error)
        }
        self.afterSend(context: context)
    }

    func ping(_ payload: ByteBuffer) throws(WebSocketError) {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        do {
            try payload.withUnsafeReadableBytes { bytes throws(SendError) in
                try self.connection.ping(bytes)
            }
        } catch {
            throw .sendFailed(error)
        }
        self.afterSend(context: context)
    }

    func pong(_ payload: ByteBuffer) throws(WebSocketError) {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        do {
            try payload.withUnsafeReadableBytes { bytes throws(SendError) in
                try self.connection.pong(bytes)
            }
        } catch {
            throw .sendFailed(error)
        }
        self.afterSend(context: context)
    }

    func close(code: CloseCode, reason: String) throws(WebSocketError) {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        do {
            try self.connection.close(code: code, reason: reason)
        } catch {
            throw .sendFailed(error)
        }
        // The peer's close reply must be readable even if the async consumer stopped reading.
        self.resumeReading(.consumer)
        self.afterSend(context: context)
    }

    /// A future that succeeds when the channel is writable (at once if it is), fails when the connection ends.
    func waitUntilWritable() -> EventLoopFuture<Void> {
        guard let context = self.context, self.finalStatus == nil else {
            return self.eventLoop.makeFailedFuture(WebSocketError.connectionClosed)
        }
        if context.channel.isWritable {
            return self.eventLoop.makeSucceededVoidFuture()
        }
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.writabilityWaiters.append(promise)
        return promise.futureResult
    }

    private static func writeHeader(_ header: FrameHeader, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameEncoder.maxHeaderLength) {
            storage in
            FrameEncoder.writeHeader(header, into: storage)
        }
    }

    private static func mask(_ buffer: inout ByteBuffer, from index: Int, key: MaskKey) {
        let length = buffer.writerIndex - index
        guard length > 0 else { return }
        let start = index - buffer.readerIndex
        _ = buffer.withUnsafeMutableReadableBytes { bytes in
            Masking.apply(
                key,
                to: UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + length)])
            )
        }
    }

    /// Moves the core's queued output (pongs, close frames) into `outputBatch` without writing it yet.
    private func collectPendingOutput(context: ChannelHandlerContext) {
        guard self.connection.hasPendingOutput else { return }
        var batch = self.outputBatch ?? context.channel.allocator.buffer(capacity: 0)
        self.outputBatch = nil
        self.connection.withPendingOutput { bytes in
            batch.writeBytes(bytes)
        }
        self.outputBatch = batch
    }

    /// Writes the core's queued output, and what was collected before, as one buffer.
    private func writePendingOutput(context: ChannelHandlerContext) {
        self.collectPendingOutput(context: context)
        guard let batch = self.outputBatch else { return }
        self.outputBatch = nil
        if batch.readableBytes > 0 {
            context.write(self.wrapOutboundOut(batch), promise: nil)
            self.needsFlush = true
        }
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
    }

    private func afterSend(context: ChannelHandlerContext) {
        self.afterCoreCall(context: context)
        if !self.isProcessingInbound {
            self.flushIfNeeded(context: context)
        }
    }

    /// Writes what the core queued, closes the transport when asked, and re-arms the timer.
    private func afterCoreCall(context: ChannelHandlerContext) {
        self.writePendingOutput(context: context)
        if self.connection.shouldCloseTransport {
            self.closeTransport(context: context)
        } else {
            self.armTimer(context: context)
        }
    }

    // MARK: - Transport close

    /// Flushes, shuts the output down (FIN after the last byte, so the peer reads our close frame instead of a
    /// reset), and closes the channel when the peer closes its side or after `closeTimeout`.
    private func closeTransport(context: ChannelHandlerContext) {
        guard !self.transportClosing else { return }
        self.transportClosing = true
        self.needsFlush = false
        self.cancelTimer()
        self.readPause = []
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(
            self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)),
            promise: flushed
        )
        let loop = context.eventLoop.assumeIsolated()
        flushed.futureResult.assumeIsolated().whenComplete { result in
            guard case .success = result, self.context != nil else {
                context.close(promise: nil)
                return
            }
            if self.fullCloseAfterFlush {
                context.close(promise: nil)
                return
            }
            self.outputHalfClosed = true
            let halfClosed = context.eventLoop.makePromise(of: Void.self)
            context.close(mode: .output, promise: halfClosed)
            halfClosed.futureResult.assumeIsolated().whenFailure { _ in
                context.close(promise: nil)
            }
        }
        self.forcedCloseTimer = loop.scheduleTask(
            in: Self.timeAmount(self.configuration.connection.closeTimeout)
        ) {
            context.close(promise: nil)
        }
        // Keep reading so the peer's FIN (or its close reply) is seen.
        if self.readHeldBack {
            self.readHeldBack = false
            context.read()
        }
    }

    private func finish(status: CloseStatus?) {
        guard self.finalStatus == nil, let context = self.context else { return }
        self.connection.receiveEOF()
        let status =
            status ?? self.connection.closeStatus ?? CloseStatus(code: .abnormalClosure, reason: "")
        self.finalStatus = status
        self.transportClosing = true
        self.cancelTimer()
        self.forcedCloseTimer?.cancel()
        self.forcedCloseTimer = nil
        self.unconsumed = nil
        self.registry?.unregister(self)
        let waiters = self.writabilityWaiters
        self.writabilityWaiters = []
        for waiter in waiters {
            waiter.fail(WebSocketError.connectionClosed)
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.webSocket(
            WebSocketContext(handler: self, channel: context.channel),
            didCloseWith: status
        )
        self.closedPromise.succeed(status)
    }

    // MARK: - Timers

    private static func now() -> Instant {
        Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Schedules `tick(now:)` at the core's next deadline. An armed timer that fires earlier than needed (the
    /// deadline moved later because of traffic) just ticks and re-arms, so traffic never reschedules tasks.
    private func armTimer(context: ChannelHandlerContext) {
        guard let deadline = self.connection.nextDeadline else {
            self.cancelTimer()
            return
        }
        if let armed = self.timerDeadline, armed <= deadline {
            return
        }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(
            deadline: .uptimeNanoseconds(deadline.nanoseconds)
        ) {
            self.timerFired()
        }
    }

    private func cancelTimer() {
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = nil
        guard let context = self.context, !self.transportClosing else { return }
        self.connection.tick(now: Self.now())
        self.needsFlush = true
        self.afterCoreCall(context: context)
        self.flushIfNeeded(context: context)
    }
}

@available(*, unavailable)
extension WebSocketHandler: Sendable {}
