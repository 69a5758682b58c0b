/// One event to send on a `text/event-stream` (WHATWG HTML, "Server-sent events", §9.2.5 "Parsing an event
/// stream" and §9.2.7 "Authoring notes").
///
/// The fields are checked when the event is made, so an event that exists can always be written: an `event` or
/// `id` holding CR or LF would end its line and inject fields of the sender's choice, and a client ignores an
/// `id` holding NUL (§9.2.6), so ``init(type:data:id:retry:)`` refuses them with ``ServerSentEventError``.
///
/// Wire form (``EventStreamEncoder/encode(_:)``), LF line ends, fields in this order, each only when set:
/// ```
/// event: <type>
/// data: <line 1 of data>
/// data: <line 2 of data>
/// id: <id>
/// retry: <milliseconds>
/// <empty line>
/// ```
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event` field: the type the client dispatches (`message` when nil or empty, §9.2.6).
    public let type: String?
    /// The `data` field, split on CR, LF and CRLF into one `data:` line each. `nil` writes no `data` line: the
    /// client then dispatches no event but still takes the `id` (§9.2.6, "dispatch the event" step 2).
    /// The empty string writes one empty `data:` line, an event with empty data.
    public let data: String?
    /// The `id` field: the client's last event ID, sent back in `Last-Event-ID` when it reconnects. The empty
    /// string resets it (the client then sends no `Last-Event-ID`). No CR, LF or NUL.
    public let id: String?
    /// The `retry` field: the client's reconnection time, in milliseconds (0 or more).
    public let retry: Int?

    /// Makes an event, refusing fields that would break the stream.
    ///
    /// - Parameters:
    ///   - type: the `event` field; must not contain CR or LF.
    ///   - data: the payload; any text (line breaks become separate `data:` lines).
    ///   - id: the `id` field; must not contain CR, LF or NUL.
    ///   - retry: reconnection time in milliseconds; must not be negative.
    /// - Throws: ``ServerSentEventError/lineBreakInType``, ``ServerSentEventError/lineBreakInID``,
    ///   ``ServerSentEventError/nullInID``, ``ServerSentEventError/negativeRetry``.
    public init(
        type: String? = nil,
        data: String? = nil,
        id: String? = nil,
        retry: Int? = nil
    ) throws(ServerSentEventError) {
        if let type, type.utf8.contains(where: { $0 == ASCII.cr || $0 == ASCII.lf }) {
            throw .lineBreakInType
        }
        if let id {
            if id.utf8.contains(where: { $0 == ASCII.cr || $0 == ASCII.lf }) { throw .lineBreakInID }
            if id.utf8.contains(0) { throw .nullInID }
        }
        if let retry, retry < 0 { throw .negativeRetry }
        self.type = type
        self.data = data
        self.id = id
        self.retry = retry
    }

    /// An event with only `data` (and the default type `message`); cannot fail.
    public init(data: String) {
        self.type = nil
        self.data = data
        self.id = nil
        self.retry = nil
    }
}

/// Why ``ServerSentEvent/init(type:data:id:retry:)`` refused a field.
public enum ServerSentEventError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The `event` field holds CR or LF, which would end the line and start a field of the sender's choice.
    case lineBreakInType
    /// The `id` field holds CR or LF (same injection).
    case lineBreakInID
    /// The `id` field holds U+0000, which makes every client ignore it (§9.2.6, "id" field).
    case nullInID
    /// The `retry` field is negative; it is a count of milliseconds.
    case negativeRetry

    public var description: String {
        switch self {
        case .lineBreakInType: "event type contains CR or LF"
        case .lineBreakInID: "event id contains CR or LF"
        case .nullInID: "event id contains NUL"
        case .negativeRetry: "retry is negative"
        }
    }
}

enum ASCII {
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let colon: UInt8 = 0x3A
    static let space: UInt8 = 0x20
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
}
