import NIOConcurrencyHelpers
import NIOCore
import WebSocketCore

/// The set of open WebSocket connections of a server (or of any owner), for graceful shutdown.
///
/// Pass it to the installer; each handler registers itself when it becomes active and leaves when its
/// connection is over. ``closeAll(code:reason:)`` starts the closing handshake on every open connection
/// (RFC 6455 §7.1.2; 1001 "going away" by default, §7.4.1) on each connection's own event loop.
/// Thread-safe.
public final class WebSocketConnectionRegistry: Sendable {
    /// A handler, touched only on its own event loop (`handler.eventLoop`): one reference per entry, so that the
    /// registry adds little to each open connection.
    private struct Entry: @unchecked Sendable {
        let handler: WebSocketHandler
        var eventLoop: any EventLoop { self.handler.eventLoop }
    }

    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    /// Creates an empty registry.
    public init() {}

    /// The number of open connections.
    public var count: Int {
        self.entries.withLockedValue { $0.count }
    }

    func register(_ handler: WebSocketHandler) {
        self.entries.withLockedValue { $0[ObjectIdentifier(handler)] = Entry(handler: handler) }
    }

    func unregister(_ handler: WebSocketHandler) {
        _ = self.entries.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(handler)) }
    }

    /// Sends a close frame with `code` and `reason` to every open connection and returns a future that
    /// succeeds on `eventLoop` when all of them are over (each bounded by its `closeTimeout`).
    @discardableResult
    public func closeAll(
        code: CloseCode = .goingAway,
        reason: String = "",
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let entries = self.entries.withLockedValue { Array($0.values) }
        let futures = entries.map { entry in
            entry.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                let handler = entry.handler  // on its event loop
                try? handler.close(code: code, reason: reason)
                return handler.closed.map { _ in () }
            }
        }
        return EventLoopFuture.andAllComplete(futures, on: eventLoop)
    }

    /// Async form of ``closeAll(code:reason:on:)``: returns when every connection is over.
    public func closeAll(code: CloseCode = .goingAway, reason: String = "") async {
        let entries = self.entries.withLockedValue { Array($0.values) }
        guard let first = entries.first else { return }
        try? await self.closeAll(code: code, reason: reason, on: first.eventLoop).get()
    }
}
