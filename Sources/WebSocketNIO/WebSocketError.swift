import WebSocketCore

/// An error of the NIO layer's send and close operations.
///
/// A struct over a private enum so that cases can be added without breaking users; compare with the static
/// members (`error == .connectionClosed`).
public struct WebSocketError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Base: Hashable, Sendable {
        case connectionClosed
        case send(SendError)
        case invalidPayload
    }

    private let base: Base

    private init(_ base: Base) {
        self.base = base
    }

    /// The WebSocket is closed (or closing and the operation needs an open connection), or the channel is gone.
    public static let connectionClosed = WebSocketError(.connectionClosed)

    /// The payload cannot be sent as requested (for example a control frame payload above 125 bytes, RFC 6455
    /// §5.5, or a close reason that is not valid UTF-8).
    public static let invalidPayload = WebSocketError(.invalidPayload)

    /// The core refused the send (wrong fragment order, control payload too long, connection closing...).
    public static func sendFailed(_ error: SendError) -> WebSocketError {
        WebSocketError(.send(error))
    }

    /// The core's error when this is ``sendFailed(_:)``, else nil.
    public var sendError: SendError? {
        if case .send(let error) = self.base { return error }
        return nil
    }

    public var description: String {
        switch self.base {
        case .connectionClosed: "WebSocket connection closed"
        case .invalidPayload: "invalid WebSocket payload"
        case .send(let error): "WebSocket send failed: \(error)"
        }
    }
}
