import WebSocketCore

/// One connection's protocol state, driven by your I/O (`write`, `closeTCP` and your clock are yours).
/// Noncopyable like the `Connection` it owns: one owner, mutated in one place.
struct Endpoint: ~Copyable {
    var connection = Connection(role: .server)  // right after the opening handshake
    let write: (UnsafeRawBufferPointer) -> Void
    let closeTCP: () -> Void

    // Bytes in: the buffer is yours; payloads are unmasked in place and valid inside the closure only.
    mutating func received(_ buffer: UnsafeMutableRawBufferPointer) {
        do {
            try connection.receive(buffer) { connection, event in
                switch event {
                case .message(let kind, let payload): try? connection.send(kind, payload)  // echo it
                case .fragment: break  // Configuration.delivery = .streaming
                case .ping, .pong: break  // the pong is already queued
                case .close(let status): print("peer closed:", status)
                }
            }
        } catch {
            print("protocol error:", error)  // the close frame with error.closeCode is queued
        }
        flush()
    }

    // Bytes out: pongs, close frames and copied sends.
    mutating func flush() {
        connection.withPendingOutput { write($0) }
        if connection.shouldCloseTransport { closeTCP() }
    }

    // Time: call at connection.nextDeadline with a monotonic clock in nanoseconds.
    mutating func tick(nanoseconds: UInt64) {
        connection.tick(now: Instant(nanoseconds: nanoseconds))
        flush()
    }
}
