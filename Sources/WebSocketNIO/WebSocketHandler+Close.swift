import CoreMetrics
import Logging
import NIOCore
import WebSocketCore

extension WebSocketHandler {
    // MARK: - Transport close

    /// Flushes, shuts the output down (FIN after the last byte, so the peer reads our close frame instead of a
    /// reset), and closes the channel when the peer closes its side or after `closeTimeout`.
    func closeTransport(context: ChannelHandlerContext) {
        guard !self.transportClosing else { return }
        self.transportClosing = true
        self.needsFlush = false
        self.cancelTimer()
        self.readPause = []
        if self.connection.closeStatus?.code == .abnormalClosure {
            // A dead or silent peer (heartbeat or close timeout): what is queued for it would wait for a reader
            // that does not come, so write what we can and close now.
            context.flush()
            context.close(promise: nil)
            return
        }
        if self.role == .client {
            // A client closes TCP only after the close handshake and the server's own close or its timeout
            // (RFC 6455 §7.1.1): nothing to linger for after the flush.
            self.fullCloseAfterFlush = true
        }
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
            in: TimeAmount(saturating: self.connection.configuration.closeTimeout)
        ) {
            context.close(promise: nil)
        }
        // Keep reading so the peer's FIN (or its close reply) is seen.
        if self.readHeldBack {
            self.readHeldBack = false
            context.read()
        }
    }

    /// Ends the connection once: reports the final status to the delegate, the close promise, the registry,
    /// the log and the metrics.
    func finish() {
        guard self.finalStatus == nil, let context = self.context else { return }
        self.connection.receiveEOF()
        var status = self.connection.closeStatus ?? CloseStatus(code: .abnormalClosure, reason: "")
        if status.code == .abnormalClosure, let error = self.transportError {
            status = CloseStatus(code: .abnormalClosure, reason: "transport error: \(error)")
        }
        self.finalStatus = status
        self.transportClosing = true
        self.cancelTimer()
        self.forcedCloseTimer?.cancel()
        self.forcedCloseTimer = nil
        self.leftoverBytes = nil
        self.buffers.releaseEverything()
        self.registry?.unregister(self)
        if self.started {
            self.metrics?.openConnections.decrement()
        }
        self.metrics?.recordClose(status.code, remote: self.peerClosed || status.code == .abnormalClosure)
        self.log(status)
        let waiters = self.writabilityWaiters
        self.writabilityWaiters = []
        for waiter in waiters {
            waiter.fail(WebSocketError.connectionClosed)
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.webSocket(
            WebSocketDelegateContext(handler: self, channel: context.channel),
            didCloseWith: status
        )
        self.closedDelivered = true
        self.closedPromise?.succeed(status)
    }

    /// A clean close (1000, 1001, or a close frame without a code) is logged at `debug`, anything else
    /// (a protocol violation, a timeout, a dropped transport) at `info` with its code and reason.
    private func log(_ status: CloseStatus) {
        switch status.code {
        case .normalClosure, .goingAway, .noStatusReceived:
            self.logger.debug("WebSocket closed", metadata: self.logMetadata(Self.closeMetadata(status)))
        default:
            self.logger.info("WebSocket connection failed", metadata: self.logMetadata(Self.closeMetadata(status)))
        }
    }

    private static func closeMetadata(_ status: CloseStatus) -> Logger.Metadata {
        ["code": "\(status.code.rawValue)", "reason": "\(status.reason)"]
    }

    // MARK: - Timers

    static func now() -> Instant {
        Instant(nanoseconds: NIODeadline.now().uptimeNanoseconds)
    }

    /// Schedules `tick(now:)` at the core's next deadline. An armed timer that fires earlier than needed (the
    /// deadline moved later because of traffic) just ticks and re-arms, so traffic never reschedules tasks.
    func armTimer(context: ChannelHandlerContext) {
        guard let deadline = self.connection.nextDeadline else {
            self.cancelTimer()
            return
        }
        if let armed = self.timerDeadline, armed <= deadline {
            return
        }
        self.timer?.cancel()
        self.timerDeadline = deadline
        let nanoseconds = min(deadline.nanoseconds, UInt64(Int64.max))
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(
            deadline: .uptimeNanoseconds(nanoseconds)
        ) {
            self.timerFired()
        }
    }

    func cancelTimer() {
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = nil
        guard let context = self.context, !self.transportClosing else { return }
        if self.readPause.contains(.consumer) {
            // We stopped reading for our own consumer, so the peer's pongs cannot be seen: our pause is not its
            // silence. (A pause because the channel is unwritable is the peer's doing: it does not read what we
            // send. It proves itself alive by reading, which makes the channel writable and resumes reading.)
            self.connection.notePeerActivity()
        }
        self.connection.tick(now: Self.now())
        self.needsFlush = true
        self.afterCoreCall(context: context)
        self.flushIfNeeded(context: context)
    }
}
