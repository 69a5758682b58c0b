import HTTPTypes
import NIOCore
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

/// A path on which the server upgrades to WebSocket, the application's decision hook, and what runs on
/// the connection once it is upgraded.
public struct WebSocketRoute: Sendable {
    /// The exact request path (without query) this route answers, e.g. `/chat`.
    public var path: String
    /// Called after the request passed RFC 6455 §4.2.1 validation and before the 101 is sent: authenticate
    /// (`Authorization` header, `access_token` query parameter), check `Origin`, choose a subprotocol.
    /// Runs as a task of the server off the event loop, cancelled when the client goes away; the handshake
    /// timeout keeps running while it runs. Without a hook of its own (the default) the route accepts without a
    /// subprotocol, decided on the event loop at once: no task, nothing held for the connection's lifetime.
    public var shouldUpgrade: @Sendable (UpgradeRequest, ConnectionInfo) async -> UpgradeDecision {
        get { self.decisionHook ?? { _, _ in .accept() } }
        set { self.decisionHook = newValue }
    }
    /// The application's hook; nil accepts without a subprotocol (see ``shouldUpgrade``).
    var decisionHook: (@Sendable (UpgradeRequest, ConnectionInfo) async -> UpgradeDecision)?
    /// What to install on the upgraded channel.
    public var handler: Handler

    /// - Parameters:
    ///   - path: exact path match.
    ///   - shouldUpgrade: the decision hook; nil (the default) accepts without a subprotocol.
    ///   - handler: the WebSocket application.
    public init(
        path: String,
        shouldUpgrade: (@Sendable (UpgradeRequest, ConnectionInfo) async -> UpgradeDecision)? = nil,
        handler: Handler
    ) {
        self.path = path
        self.decisionHook = shouldUpgrade
        self.handler = handler
    }

    /// The WebSocket application of a route.
    public enum Handler: Sendable {
        /// Async API: the closure gets a ``WebSocketNIO/WebSocket`` to iterate and send on. It runs as a child
        /// task of the server's ``Server/run()``; when it returns the connection is closed with 1000, when it
        /// throws with 1011 (internal error, RFC 6455 §7.4.1) and the error is logged, unless the connection
        /// is already closed. On shutdown it gets the grace period, then it is cancelled. A closure that only
        /// sends calls ``WebSocketNIO/WebSocket/discardInboundMessages()`` first.
        case async(@Sendable (WebSocket, AcceptedUpgrade) async throws -> Void)
        /// Delegate API: the closure is called on the event loop and returns the delegate that receives the
        /// events (borrowed payloads, the fastest path).
        case delegate(@Sendable (AcceptedUpgrade) -> any WebSocketDelegate)
        /// The seam for anything else: the closure is called on the event loop after the HTTP handlers are
        /// removed and must install its own handlers on `channel` (synchronously, with
        /// `channel.pipeline.syncOperations`). `leftoverBytes` are the bytes the client sent behind its request
        /// head (an early first frame); they must be processed before anything read later.
        case channel(@Sendable (_ channel: any Channel, AcceptedUpgrade, _ leftoverBytes: ByteBuffer?) throws -> Void)
    }
}

/// What the server knows about a connection besides the request.
public struct ConnectionInfo: Sendable {
    /// The client's address.
    public var remoteAddress: SocketAddress?
    /// The server's address the client connected to.
    public var localAddress: SocketAddress?
    /// Whether the connection runs over TLS (`wss`).
    public var isSecure: Bool

    public init(remoteAddress: SocketAddress?, localAddress: SocketAddress?, isSecure: Bool) {
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.isSecure = isSecure
    }
}

/// The application's answer to a valid upgrade request.
public enum UpgradeDecision: Sendable {
    /// Accept: send 101 with the chosen subprotocol (one the client offered, RFC 6455 §4.2.2), accepted
    /// extensions (ones the client offered) and further header fields. permessage-deflate is negotiated by the
    /// server itself from ``Server/Configuration/perMessageDeflate``; an element of that name in
    /// `extensions` is ignored.
    case accept(subprotocol: String? = nil, extensions: [WebSocketExtension] = [], headerFields: HTTPFields = [:])
    /// Refuse with `status` (typically 401 or 403), a `text/plain` body and further header fields (e.g.
    /// `WWW-Authenticate`); the connection is closed after the response.
    case reject(status: HTTPResponse.Status, body: String = "", headerFields: HTTPFields = [:])
}

/// A handshake the server accepted.
public struct AcceptedUpgrade: Sendable {
    /// The validated request.
    public var request: UpgradeRequest
    /// The subprotocol sent in the 101, or `nil`.
    public var subprotocol: String?
    /// The extensions sent in the 101.
    public var extensions: [WebSocketExtension]
    /// Addresses and TLS.
    public var connection: ConnectionInfo
    /// The agreed permessage-deflate parameters, when it was negotiated.
    public var perMessageDeflate: PerMessageDeflate.Parameters? = nil
}

/// A plain HTTP answer for requests that are not WebSocket upgrades.
public struct PlainHTTPResponse: Sendable {
    /// Status and header fields. `Content-Length` and `Connection: close` are set by the server.
    public var response: HTTPResponse
    /// The body bytes.
    public var body: [UInt8]

    public init(response: HTTPResponse, body: [UInt8] = []) {
        self.response = response
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public init(status: HTTPResponse.Status, text: String, headerFields: HTTPFields = [:]) {
        var fields = headerFields
        if fields[.contentType] == nil { fields[.contentType] = "text/plain; charset=utf-8" }
        self.init(response: HTTPResponse(status: status, headerFields: fields), body: Array(text.utf8))
    }

    /// 404 Not Found, the default answer for paths without a route.
    public static let notFound = PlainHTTPResponse(status: .notFound, text: "Not Found\n")
}
