import HTTPTypes
import NIOCore
import ServerSentEvents

/// A path on which the server answers `GET` with a `text/event-stream` response (Server-Sent Events, WHATWG
/// HTML §9.2), on the same listener as the WebSocket routes.
///
/// ```swift
/// EventStreamRoute(path: "/ticker", handler: .events { request in
///     AsyncStream { continuation in ... }   // any AsyncSequence of ServerSentEvent
/// })
/// ```
///
/// The response carries `Content-Type: text/event-stream`, `Cache-Control: no-cache`, `X-Accel-Buffering: no`
/// (nginx passes each event on at once) and no content coding; over HTTP/1.1 the body is chunked and every
/// event is flushed as it is written, and the connection closes when the stream ends. Over HTTP/2 (with
/// ``Server/Configuration/http2``) each write is a DATA frame on the request's stream, the end is END_STREAM, and
/// the connection and its other streams stay (RFC 9113 §8.1).
public struct EventStreamRoute: Sendable {
    /// The exact request path (without query) this route answers, e.g. `/events`. When a WebSocket route has
    /// the same path, requests with `Upgrade: websocket` go to the WebSocket route and the others here.
    public var path: String
    /// Called before the response is sent: authenticate (``EventStreamRequest/bearerToken``: `Authorization`
    /// header or `access_token` query parameter), check `Origin`, or stop a client from reconnecting (204).
    /// Runs as a task of the server, cancelled when the client goes away.
    public var shouldAccept: @Sendable (EventStreamRequest, ConnectionInfo) async -> EventStreamDecision
    /// What produces the events.
    public var handler: Handler
    /// Heartbeats, buffering and the retry hint.
    public var configuration: Configuration

    public init(
        path: String,
        configuration: Configuration = .init(),
        shouldAccept: @escaping @Sendable (EventStreamRequest, ConnectionInfo) async -> EventStreamDecision = {
            _, _ in .accept()
        },
        handler: Handler
    ) {
        self.path = path
        self.configuration = configuration
        self.shouldAccept = shouldAccept
        self.handler = handler
    }

    /// Per-stream settings.
    public struct Configuration: Sendable {
        /// A comment line (`:`, which clients ignore) is written every interval so that proxies do not close an
        /// idle stream (WHATWG HTML §9.2.7 suggests about 15 s). `nil` turns heartbeats off. Default 15 s.
        public var heartbeatInterval: Duration?
        /// The most bytes a stream may have written but not yet taken by the client's TCP connection (over
        /// HTTP/2: not yet sent, as DATA frames wait for the stream's and the connection's flow-control windows). When
        /// exceeded: an ``Handler/async(_:)`` or ``Handler/events(_:)`` producer is paused (its `send` waits)
        /// until the client has read below the limit; a ``Handler/broadcast(_:)`` stream, whose producer
        /// cannot wait for one client, is closed (the client reconnects and resumes from the history); a
        /// ``Handler/callback(_:)`` producer sees ``EventStreamLoopWriter/isWritable`` false and decides.
        /// Heartbeats are skipped while it is exceeded. Default 256 KiB (262 144).
        public var maxBufferedBytes: Int
        /// When set, the stream starts with a `retry` field: the client's reconnection time, in milliseconds.
        /// Default nil (clients use their own, 3 s in browsers).
        public var retry: Int?
        /// The longest `Last-Event-ID` accepted, in bytes; a longer one, one that is not valid UTF-8 or holds
        /// NUL, or several `Last-Event-ID` fields, are answered 400 Bad Request. Default 1024.
        public var maxLastEventIDLength: Int

        public init(
            heartbeatInterval: Duration? = .seconds(15),
            maxBufferedBytes: Int = 256 * 1024,
            retry: Int? = nil,
            maxLastEventIDLength: Int = 1024
        ) {
            self.heartbeatInterval = heartbeatInterval
            self.maxBufferedBytes = maxBufferedBytes
            self.retry = retry
            self.maxLastEventIDLength = maxLastEventIDLength
        }
    }

    /// What produces a route's events.
    public enum Handler: Sendable {
        /// The closure writes events with ``EventStreamWriter/send(_:)`` (which waits while the stream's
        /// buffer is full) and returns to end the stream. It runs as a child task of the server's ``Server/run()``,
        /// cancelled when the client goes away or when the server shuts down; a thrown error is logged and
        /// ends the stream.
        case async(@Sendable (EventStreamRequest, EventStreamWriter) async throws -> Void)
        /// Callback API: called on the channel's event loop with a writer bound to it; the application keeps
        /// the writer and writes when it likes (from that event loop).
        case callback(@Sendable (EventStreamRequest, EventStreamLoopWriter) -> Void)
        /// Every client gets the events published on `broadcaster`, resuming after its `Last-Event-ID` from the
        /// broadcaster's history (``EventStreamBroadcaster``).
        case broadcast(EventStreamBroadcaster)

        /// The events of the sequence `makeEvents` returns, in order; the stream ends with the sequence (or
        /// with an error it throws, logged). Cancelled when the client goes away.
        public static func events<Events: AsyncSequence & Sendable>(
            _ makeEvents: @escaping @Sendable (EventStreamRequest) -> Events
        ) -> Handler where Events.Element == ServerSentEvent {
            .async { request, writer in
                for try await event in makeEvents(request) {
                    try await writer.send(event)
                }
            }
        }
    }
}

/// The application's answer to an event stream request.
public enum EventStreamDecision: Sendable {
    /// Start the stream, with further response header fields.
    case accept(headerFields: HTTPFields = [:])
    /// 204 No Content: the client stops reconnecting (WHATWG HTML §9.2.7).
    case noContent
    /// Refuse with `status` (e.g. 401, 403), a `text/plain` body and further header fields. Browsers do not
    /// reconnect after a status other than 200 (WHATWG HTML §9.2.3, "fail the connection").
    case reject(status: HTTPResponse.Status, body: String = "", headerFields: HTTPFields = [:])
}

/// An event stream request.
public struct EventStreamRequest: Sendable {
    /// The HTTP request.
    public var request: HTTPRequest
    /// The path without the query.
    public var path: String
    /// The query (after `?`), percent-encoded, or nil.
    public var query: String?
    /// The `Last-Event-ID` header field: the `id` of the last event the client saw before it reconnected
    /// (WHATWG HTML §9.2.4); nil on a first connection.
    public var lastEventID: String?
    /// The addresses and TLS state of the connection.
    public var connection: ConnectionInfo

    /// The request's `Origin` field, if any.
    public var origin: String? { request.headerFields[.origin] }

    /// The decoded value of the first query parameter called `name` (`+` is a space, `%XX` escapes decoded).
    public func queryValue(_ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if Self.formDecode(parts[0]) == name {
                return parts.count > 1 ? Self.formDecode(parts[1]) : nil
            }
        }
        return nil
    }

    /// The bearer token: from `Authorization: Bearer <token>`, else from the `access_token` query parameter
    /// (browsers' `EventSource` cannot set headers).
    public var bearerToken: String? {
        if let authorization = request.headerFields[.authorization] {
            let prefix = "bearer "
            if authorization.count > prefix.count, authorization.lowercased().hasPrefix(prefix) {
                return String(authorization.dropFirst(prefix.count)).trimmingSpaces()
            }
        }
        return queryValue("access_token")
    }

    static func formDecode(_ text: Substring) -> String {
        let input = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "+") {
                output.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hexDigit(input[index + 1]), let low = hexDigit(input[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
                continue
            } else {
                output.append(byte)
            }
            index += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

extension HTTPField.Name {
    /// `Last-Event-ID` (WHATWG HTML §9.2.4).
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
