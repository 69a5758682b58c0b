import WebSocketCore

/// An error of the NIO layer's send and close operations.
///
/// A struct over a private enum so that cases can be added without breaking users; compare with the static
/// members (`error == .connectionClosed`).
public struct WebSocketError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Base: Hashable, Sendable {
        case connectionClosed
        case send(SendError)
    }

    private let base: Base

    private init(_ base: Base) {
        self.base = base
    }

    /// The WebSocket is closing or closed (our close frame was sent, the peer's arrived, the connection
    /// failed) or the channel is gone. However a send found out, this is the one error it throws for it.
    public static let connectionClosed = WebSocketError(.connectionClosed)

    /// The core refused the send for another reason: wrong fragment order (RFC 6455 §5.4), a control payload
    /// above 125 bytes (§5.5), a close code that may not be sent (§7.4).
    public static func sendFailed(_ error: SendError) -> WebSocketError {
        error == .connectionClosed ? .connectionClosed : WebSocketError(.send(error))
    }

    /// The core's error when this is ``sendFailed(_:)``, else nil.
    public var sendError: SendError? {
        if case .send(let error) = self.base { return error }
        return nil
    }

    public var description: String {
        switch self.base {
        case .connectionClosed: "WebSocket connection closed"
        case .send(let error): "WebSocket send failed: \(error)"
        }
    }
}
