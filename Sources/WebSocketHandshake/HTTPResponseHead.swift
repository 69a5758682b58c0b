import HTTPTypes

/// An HTTP/1.x response head as read from the wire by ``HTTPResponseHeadParser``: the response and the version
/// of its status line, which `HTTPResponse` does not carry.
public struct HTTPResponseHead: Sendable, Hashable {
    /// The version of the status line (RFC 9112 §2.3), e.g. ``HTTPProtocolVersion/http1_1``.
    public var version: HTTPProtocolVersion
    /// The status, reason phrase and header fields, in the order received.
    public var response: HTTPResponse

    /// Creates a head from its status-line version and the response (status, reason, header fields).
    public init(version: HTTPProtocolVersion, response: HTTPResponse) {
        self.version = version
        self.response = response
    }
}
