/// Why a hub client operation failed (the connection, negotiate, the handshake), as opposed to a hub method's own
/// error, which is a ``HubInvocationError``.
public struct HubClientError: Error, Sendable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Kind: Sendable, Hashable {
        /// The URL is not `http://`, `https://`, `ws://` or `wss://` with a host.
        case invalidURL
        /// Negotiate (`POST {hub}/negotiate`) failed: connection error, a non-200 status, a bad body, an
        /// `error` field, or too many redirects.
        case negotiateFailed
        /// The server refused the credentials: 401 on negotiate or on the WebSocket upgrade.
        case unauthorized
        /// The WebSocket could not be opened.
        case transportFailed
        /// The handshake failed: an `{"error":…}` answer, a bad answer, or no answer within the timeout.
        case handshakeFailed
        /// The call needs an open connection and there is none (not started, reconnecting, or closed).
        case notConnected
        /// The connection ended while the invocation or stream was pending.
        case connectionLost
        /// The server sent a Close message (its `error`, if any, is the detail).
        case serverClosed
        /// No message from the server within ``HubClientConfiguration/serverTimeout``.
        case serverTimeout
        /// A message could not be decoded or an argument or result could not be converted.
        case protocolError
        /// ``HubClientConnection/run()`` was called twice.
        case alreadyRunning
        /// A consumer fell too far behind: a stream's reader by ``HubClientConfiguration/streamBufferLimit``
        /// items (the stream ends and is cancelled on the server), or the `on` handlers by
        /// ``HubClientConfiguration/invocationQueueLimit`` invocations (the connection ends).
        case slowConsumer
    }

    /// What failed (see ``Kind``).
    public let kind: Kind
    /// Human-readable details (the server's message, the HTTP status, the underlying error).
    public let detail: String
    /// The HTTP status of a failed negotiate or upgrade, when there was one.
    public let status: Int?

    public init(_ kind: Kind, _ detail: String = "", status: Int? = nil) {
        self.kind = kind
        self.detail = detail
        self.status = status
    }

    public var description: String {
        let statusText = status.map { " (HTTP \($0))" } ?? ""
        return detail.isEmpty ? "\(kind)\(statusText)" : "\(kind)\(statusText): \(detail)"
    }
}

/// The error a hub method threw on the server: the Completion's `error` string (HubProtocol.md, "Completion").
public struct HubInvocationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server's message, e.g. `An unexpected error occurred invoking 'Add' on the server.` or the text of a
    /// `HubError`.
    public let message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
