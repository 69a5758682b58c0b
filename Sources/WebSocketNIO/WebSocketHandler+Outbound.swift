import CoreMetrics
import Logging
import NIOCore
import WebSocketCore

/// A data frame's payload as the senders give it.
enum OutboundPayload {
    /// A buffer's readable bytes: written without a copy when large (server role).
    case buffer(ByteBuffer)
    /// Borrowed memory, valid for the call: copied once behind the header.
    case borrowed(UnsafeRawBufferPointer)

    var count: Int {
        switch self {
        case .buffer(let buffer): buffer.readableBytes
        case .borrowed(let bytes): bytes.count
        }
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .buffer(let buffer): buffer.withUnsafeReadableBytes(body)
        case .borrowed(let bytes): body(bytes)
        }
    }
}

extension WebSocketHandler {
    // MARK: - Data frames

    /// The one data-frame send path of the callback and async APIs.
    ///
    /// With a negotiated per-message codec (permessage-deflate) and `encode`, a whole message goes through the
    /// core's encoding send (copied once into the output queue). Otherwise the frame is a header buffer plus
    /// the payload: copied behind the header up to ``WebSocketConfiguration/smallPayloadCopyLimit`` (and always
    /// for borrowed memory), else written as a second buffer (one `writev`; the client masks it in place when
    /// the buffer is uniquely owned, else a copy-on-write copy).
    ///
    /// - Throws: ``WebSocketError/connectionClosed`` or ``WebSocketError/sendFailed(_:)``; `promise` is then
    ///   failed with the same error. Otherwise `promise` completes when the frame is written to the socket.
    func sendFrame(
        _ opcode: Opcode,
        _ payload: OutboundPayload,
        fin: Bool,
        encode: Bool = true,
        promise: EventLoopPromise<Void>? = nil
    ) throws(WebSocketError) {
        do {
            try self.writeDataFrame(opcode, payload, fin: fin, encode: encode, promise: promise)
        } catch {
            promise?.fail(error)
            throw error
        }
    }

    /// Several whole messages with one flush: they are written as the answers to one read are (small frames
    /// gathered into one buffer), then flushed once. `promise` completes when the last one is written.
    /// - Throws: as ``sendFrame(_:_:fin:encode:promise:)``; `promise` is then failed with the same error.
    func sendMessages(
        _ messages: [WebSocketBatchMessage],
        encode: Bool,
        promise: EventLoopPromise<Void>
    ) throws(WebSocketError) {
        let wasProcessingInbound = self.isProcessingInbound
        // Writes made while a read is processed are gathered and flushed once at its end (`afterSend` defers
        // to it); a batch is gathered the same way, and ends (written, flushed) as a read does.
        self.isProcessingInbound = true
        defer {
            self.isProcessingInbound = wasProcessingInbound
            if !wasProcessingInbound, let context = self.context { self.afterSend(context: context) }
        }
        for (index, message) in messages.enumerated() {
            let last = index == messages.count - 1
            do {
                switch message {
                case .payload(let kind, let payload):
                    try self.sendFrame(
                        kind.opcode, .buffer(payload), fin: true, encode: encode, promise: last ? promise : nil)
                case .shared(let shared):
                    try self.writeSharedFrame(shared, encode: encode, promise: last ? promise : nil)
                }
            } catch {
                // `sendFrame` and `writeSharedFrame` fail the last message's promise themselves; an earlier
                // message's failure ends the batch.
                if !last { promise.fail(error) }
                throw error
            }
        }
    }

    private func writeDataFrame(
        _ opcode: Opcode,
        _ payload: OutboundPayload,
        fin: Bool,
        encode: Bool,
        promise: EventLoopPromise<Void>?
    ) throws(WebSocketError) {
        guard let context = self.context, !self.transportClosing else { throw .connectionClosed }
        let count = payload.count
        if encode, let kind = self.encodedMessageKind(opcode, fin: fin) {
            let sent = payload.withBytes { bytes in
                Result { () throws(SendError) in try self.connection.send(kind, bytes) }
            }
            if case .failure(let error) = sent { throw .sendFailed(error) }
            if let metrics = self.metrics, count > 0 {
                self.collectPendingOutput(context: context)
                let wire = self.outputBatch?.readableBytes ?? count
                metrics.deflateRatio.record(Double(wire) / Double(count))
            }
            self.countSent(opcode, count)
            self.writePendingOutput(context: context, promise: promise)
            self.afterSend(context: context)
            return
        }
        let header: FrameHeader
        do {
            header = try self.connection.makeFrameHeader(opcode, payloadLength: count, fin: fin)
        } catch {
            throw .sendFailed(error)
        }
        self.countSent(opcode, count)
        let small = count <= self.smallPayloadCopyLimit
        var payload = payload
        if !small, self.role == .server, case .borrowed(let bytes) = payload,
            let owned = self.ownedBuffer(holding: bytes)
        {
            // A received payload echoed back (the joined message, or a part of the read): written from our own
            // buffer as it is, without a copy (nothing writes to it while NIO holds it: it is reused only once
            // uniquely referenced again).
            payload = .buffer(owned)
        }
        var merge = small
        if case .borrowed = payload { merge = true }
        if small && self.isProcessingInbound {
            // The answers to one read leave together: small frames are appended to the batch that is written
            // once at the end of the read (with the core's pongs, in order), and flushed once per read burst.
            self.collectPendingOutput(context: context)
            var batch =
                self.outputBatch.take() ?? self.newBatch(minimumCapacity: header.headerLength + count, context: context)
            Self.appendFrame(header, payload, to: &batch)
            self.outputBatch = batch
            if promise != nil {
                self.writePendingOutput(context: context, promise: promise)
            }
            self.needsFlush = true
            return
        }
        if merge {
            self.writePendingOutput(context: context, promise: nil)
            // A large copied payload goes into the send buffer kept from the previous one (once NIO wrote it).
            var out =
                small
                ? context.channel.allocator.buffer(capacity: header.headerLength + count)
                : self.buffers.takeSendBuffer(
                    capacity: header.headerLength + count,
                    allocator: context.channel.allocator
                )
            Self.appendFrame(header, payload, to: &out)
            context.write(self.wrapOutboundOut(out), promise: promise)
            if !small {
                self.buffers.sendBuffer = out
                self.noteBufferUse(context: context)
            }
        } else if case .buffer(var buffer) = payload {
            // The header goes behind what is pending (the batch of the read being processed, if any), then the
            // payload buffer as it is: one vectored write.
            self.collectPendingOutput(context: context)
            var out =
                self.outputBatch.take()
                ?? self.buffers.takeOutputBuffer(capacity: header.headerLength, allocator: context.channel.allocator)
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameEncoder.maxHeaderLength) { storage in
                FrameEncoder.writeHeader(header, into: storage)
            }
            if let key = header.maskKey {
                // Copy-on-write: masks in place when the caller gave up the buffer, else on a private copy.
                Self.mask(&buffer, from: buffer.readerIndex, key: key)
            }
            context.write(self.wrapOutboundOut(out), promise: nil)
            context.write(self.wrapOutboundOut(buffer), promise: promise)
            self.keepOutputBuffer(out)
        }
        self.needsFlush = true
        self.afterSend(context: context)
    }

    /// Appends a whole frame, header and payload (masked with the header's key), to `out`, in one pass over the
    /// buffer's storage (one capacity check, one access).
    private static func appendFrame(_ header: FrameHeader, _ payload: OutboundPayload, to out: inout ByteBuffer) {
        _ = payload.withBytes { bytes in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameEncoder.maxHeaderLength + bytes.count) {
                storage in
                let headerLength = FrameEncoder.writeHeader(header, into: storage)
                let body = UnsafeMutableRawBufferPointer(rebasing: storage[headerLength..<(headerLength + bytes.count)])
                if let source = bytes.baseAddress, let target = body.baseAddress {
                    target.copyMemory(from: source, byteCount: bytes.count)
                }
                if let key = header.maskKey {
                    _ = Masking.apply(key, to: body)
                }
                return headerLength + bytes.count
            }
        }
    }

    /// A buffer for the output of the read being processed: room for `minimumCapacity` bytes and, since the
    /// answers to a read are often about as long as the read (echo, request and response), for up to its length.
    /// The last batch's buffer when NIO has written it and it was kept (`keepOutputBuffer`).
    private func newBatch(minimumCapacity: Int, context: ChannelHandlerContext) -> ByteBuffer {
        let readLength = min(self.currentRead?.readableBytes ?? 0, 1 << 16)
        return self.buffers.takeOutputBuffer(
            capacity: max(minimumCapacity, readLength),
            allocator: context.channel.allocator
        )
    }

    func countSent(_ opcode: Opcode, _ count: Int) {
        guard let metrics = self.metrics else { return }
        if opcode != .continuation { metrics.messagesOut.increment() }
        metrics.bytesOut.increment(by: count)
    }

    /// With a negotiated per-message codec, whole messages are encoded; fragments are sent uncompressed
    /// (RFC 7692 allows both).
    private func encodedMessageKind(_ opcode: Opcode, fin: Bool) -> MessageKind? {
        guard fin, self.hasCodec else { return nil }
        switch opcode {
        case .text: return .text
        case .binary: return .binary
        default: return nil
        }
    }

    private static func mask(_ buffer: inout ByteBuffer, from index: Int, key: MaskKey) {
        let length = buffer.writerIndex - index
        guard length > 0 else { return }
        let start = index - buffer.readerIndex
        _ = buffer.withUnsafeMutableReadableBytes { bytes in
            Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + length)]))
        }
    }

    // MARK: - Control frames

    /// Sends a ping (`isPong == false`) or an unsolicited pong, at most 125 bytes (RFC 6455 §5.5.2, §5.5.3).
    func sendControl(isPong: Bool, _ payload: ByteBuffer, promise: EventLoopPromise<Void>?) throws(WebSocketError) {
        do throws(WebSocketError) {
            guard let context = self.context, !self.transportClosing else { throw WebSocketError.connectionClosed }
            do {
                try payload.withUnsafeReadableBytes { (bytes) throws(SendError) in
                    if isPong { try self.connection.pong(bytes) } else { try self.connection.ping(bytes) }
                }
            } catch {
                throw WebSocketError.sendFailed(error)
            }
            self.writePendingOutput(context: context, promise: promise)
            self.afterSend(context: context)
        } catch {
            promise?.fail(error)
            throw error
        }
    }

    /// Starts the close handshake (RFC 6455 §7.1.2). Reading resumes so that the peer's reply is seen even when
    /// the async consumer stopped reading.
    func close(code: CloseCode, reason: String, promise: EventLoopPromise<Void>? = nil) throws(WebSocketError) {
        do throws(WebSocketError) {
            guard let context = self.context, !self.transportClosing else { throw WebSocketError.connectionClosed }
            do {
                try self.connection.close(code: code, reason: reason)
            } catch {
                throw WebSocketError.sendFailed(error)
            }
            self.logger.debug(
                "WebSocket closing",
                metadata: self.logMetadata(["code": "\(code.rawValue)", "reason": "\(reason)"])
            )
            self.resumeReading(.consumer)
            self.writePendingOutput(context: context, promise: promise)
            self.afterSend(context: context)
        } catch {
            promise?.fail(error)
            throw error
        }
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

    // MARK: - The core's output queue

    /// Moves the core's queued output (pongs, close frames) into `outputBatch` without writing it yet.
    func collectPendingOutput(context: ChannelHandlerContext) {
        guard self.connection.hasPendingOutput else { return }
        var batch = self.outputBatch ?? context.channel.allocator.buffer(capacity: 0)
        self.outputBatch = nil
        self.connection.withPendingOutput { bytes in
            batch.writeBytes(bytes)
        }
        self.outputBatch = batch
    }

    /// Writes the core's queued output, and what was collected before, as one buffer; `promise` completes
    /// when it is written (at once when there is nothing to write).
    func writePendingOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        self.collectPendingOutput(context: context)
        guard let batch = self.outputBatch, batch.readableBytes > 0 else {
            self.outputBatch = nil
            promise?.succeed()
            return
        }
        self.outputBatch = nil
        context.write(self.wrapOutboundOut(batch), promise: promise)
        self.keepOutputBuffer(batch)
        self.needsFlush = true
    }

    func flushIfNeeded(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
    }

    func afterSend(context: ChannelHandlerContext) {
        // While a read is processed, its end writes what is pending (one batch), closes the transport when
        // asked, re-arms the timer and flushes once (`processInbound`, `channelReadComplete`).
        guard !self.isProcessingInbound else { return }
        self.afterCoreCall(context: context)
        self.flushIfNeeded(context: context)
    }

    /// Writes what the core queued, closes the transport when asked, and re-arms the timer.
    func afterCoreCall(context: ChannelHandlerContext) {
        self.writePendingOutput(context: context)
        if self.connection.shouldCloseTransport {
            self.closeTransport(context: context)
        } else {
            self.armTimer(context: context)
        }
    }
}
