extension Connection {
    /// Counts as traffic from the peer for the heartbeat: the next ``tick(now:)`` restarts the idle time and
    /// forgets an unanswered ping, as if a frame had arrived. For callers that pause reading (backpressure):
    /// while they do not read, the peer's pongs cannot be seen, and their own pause is not the peer's silence.
    public mutating func notePeerActivity() {
        activity = true
    }

    /// Advances the connection's timers: the heartbeat ping, the pong timeout, the close-handshake timeout and
    /// (client role) the wait for the server to close TCP. Call it at ``nextDeadline`` or later, then write
    /// pending output and honour ``shouldCloseTransport``.
    ///
    /// A deadline is the reading that armed it plus the configured duration, saturating at the largest
    /// ``Instant``: a `.seconds(Int64.max)` timeout never expires and never traps.
    ///
    /// - Parameter now: the current reading of the caller's monotonic clock; never earlier than a previous one.
    public mutating func tick(now: Instant) {
        if activity {
            activity = false
            lastActivity = now
            pingSentAt = nil
        }
        switch lifecycle {
        case .failed, .closed:
            return
        case .closeReceived(let status, let deadline):
            // Client role after the close handshake: the server should close TCP first (RFC 6455 §7.1.1).
            guard let deadline else {
                lifecycle = .closeReceived(status, transportDeadline: now + configuration.closeTimeout)
                return
            }
            if now >= deadline { lifecycle = .closed(status, transportEnded: false) }
        case .closeSent(let deadline):
            guard let deadline else {
                lifecycle = .closeSent(deadline: now + configuration.closeTimeout)
                return
            }
            if now >= deadline {
                let status = CloseStatus(code: .abnormalClosure, reason: "close handshake timed out")
                lifecycle = .closed(status, transportEnded: false)
            }
        case .open:
            heartbeat(now: now)
        }
    }

    /// The open connection's keepalive: a ping after `pingInterval` of silence, failure `pongTimeout` later.
    private mutating func heartbeat(now: Instant) {
        guard let interval = configuration.pingInterval else { return }
        guard let last = lastActivity else {
            lastActivity = now
            return
        }
        if let sent = pingSentAt {
            if now >= sent + configuration.pongTimeout {
                fail(
                    closeCode: .internalError, reason: "keepalive ping timeout",
                    reporting: CloseStatus(code: .abnormalClosure, reason: "no pong or other traffic after ping"))
            }
        } else if now >= last + interval {
            pingCounter &+= 1
            let counter = pingCounter
            writeFrame(.ping, fin: true, payloadLength: 4) { destination in
                destination.storeBytes(of: counter.bigEndian, as: UInt32.self)
            }
            pingSentAt = now
        }
    }

    /// When ``tick(now:)`` must next be called, on the caller's clock; `nil` when no timer is needed. A value
    /// at or before the current time (possibly ``Instant/init(nanoseconds:)`` with 0) means "as soon as
    /// possible": the connection needs a first reading of the clock to arm a timer.
    public var nextDeadline: Instant? {
        let soon = Instant(nanoseconds: 0)
        switch lifecycle {
        case .failed, .closed:
            return nil
        case .closeReceived(_, let deadline):
            return deadline ?? soon
        case .closeSent(let deadline):
            return deadline ?? soon
        case .open:
            guard let interval = configuration.pingInterval else { return nil }
            if let sent = pingSentAt { return activity ? soon : sent + configuration.pongTimeout }
            guard let last = lastActivity else { return soon }
            return last + interval
        }
    }
}
