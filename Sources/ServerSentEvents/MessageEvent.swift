/// An event a client dispatches (WHATWG HTML §9.2.6, "dispatch the event"): what `EventSource` hands to
/// `onmessage` or to the listener of ``type``.
public struct MessageEvent: Sendable, Hashable {
    /// The event type: the last `event` field of the block, or `message` when there was none or it was empty.
    public var type: String
    /// The `data` lines of the block joined with LF (without a final LF).
    public var data: String
    /// The stream's last event ID when the event was dispatched: the last `id` field seen so far, in this
    /// block or an earlier one (the empty string when none, or after an empty `id`).
    public var lastEventID: String

    public init(type: String = "message", data: String, lastEventID: String = "") {
        self.type = type
        self.data = data
        self.lastEventID = lastEventID
    }
}
