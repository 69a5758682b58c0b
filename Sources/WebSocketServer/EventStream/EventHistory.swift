import ServerSentEvents

/// A replay history shared by the servers of one application, so that a client that reconnects to *another*
/// server with `Last-Event-ID` (WHATWG HTML §9.2.4) gets exactly the events it missed.
///
/// Give one to ``EventStreamBroadcaster/init(configuration:sharedHistory:)``; without one the broadcaster keeps
/// its own in-memory history (one server). The history assigns the event IDs, so an ID means the same event on
/// every server: an event's own `id` is replaced by the one ``append(_:)`` returns.
///
/// Contract (every implementation):
/// - IDs are assigned in append order and ``events(after:)`` returns events in that order.
/// - The history is bounded (a count or a byte size); the oldest events leave it first.
/// - Both methods may throw when the store cannot be reached; the broadcaster then serves live events without a
///   history (see ``EventStreamBroadcaster/publishShared(_:)``).
public protocol EventHistory: Sendable {
    /// Appends `event` (its `id`, if any, is ignored) and returns the ID it has in the history.
    /// - Throws: when the store cannot be reached or refuses the event.
    func append(_ event: ServerSentEvent) async throws -> String

    /// The events appended after the one with `id`, oldest first, each with its history ID set; every event the
    /// history holds when `id` is nil. At most the history's bound.
    /// - Returns: nil when `id` is not in the history (evicted, or never assigned by it).
    /// - Throws: when the store cannot be reached.
    func events(after id: String?) async throws -> [ServerSentEvent]?
}
