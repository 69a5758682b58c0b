import WebSocketClient

/// How a ``HubClientConnection`` connects: protocol, credentials, timeouts and reconnection.
public struct HubClientConfiguration: Sendable {
    /// The hub protocol (HubProtocol.md): `json` (text frames) or `messagepack` (binary frames).
    public enum HubProtocolChoice: String, Sendable, Hashable {
        case json
        case messagePack = "messagepack"
    }

    /// The hub protocol. Default: `.json`.
    public var hubProtocol: HubProtocolChoice
    /// Called before every negotiate and every WebSocket connect (so a refreshed token is used on reconnect);
    /// a non-nil token is sent as `Authorization: Bearer <token>`. Default: nil (no token).
    public var accessTokenProvider: (@Sendable () async throws -> String?)?
    /// Extra header fields for negotiate and the WebSocket upgrade.
    public var headers: [(name: String, value: String)]
    /// Connect the WebSocket directly, without `POST /negotiate` (the server must accept connections without
    /// an `id`; ours does). Default: false.
    public var skipNegotiation: Bool
    /// How often a Ping is sent (HubProtocol.md "Ping"; .NET `KeepAliveInterval`). Default: 15 s.
    public var keepAliveInterval: Duration
    /// The connection is closed when nothing arrives from the server for this long (.NET
    /// `ServerTimeout`; should be at least twice the server's keep-alive interval). Default: 30 s.
    public var serverTimeout: Duration
    /// Bound on negotiate, the WebSocket opening and the handshake answer, each. Default: 15 s.
    public var handshakeTimeout: Duration
    /// The delays before each reconnect attempt after a connection is lost; nil turns automatic reconnection
    /// off (the default). ``defaultReconnectDelays`` is SignalR's `withAutomaticReconnect()` list: 0, 2, 10 and
    /// 30 s, then the connection closes.
    public var reconnectDelays: [Duration]?
    /// WebSocket client options (TLS, proxies, limits). Its header fields are merged with ``headers``.
    public var webSocket: WebSocketClientConfiguration
    /// Maximum negotiate redirects (`url` + `accessToken` answers) followed. Default: 10.
    public var maxNegotiateRedirects: Int
    /// The most items of one ``HubClientConnection/stream(_:_:of:)`` waiting to be read. One more ends that
    /// stream with ``HubClientError/Kind/slowConsumer`` and sends CancelInvocation (no item is silently lost).
    /// Default: 1000.
    public var streamBufferLimit: Int
    /// The most server invocations waiting for the `on` handlers (which run one at a time). One more ends the
    /// connection with ``HubClientError/Kind/slowConsumer`` (reconnecting when enabled). Default: 1000.
    public var invocationQueueLimit: Int
    /// Ask for stateful reconnect (HubProtocol.md "Stateful Reconnect"; SignalR's `withStatefulReconnect()`):
    /// negotiate with `useStatefulReconnect=true` and, when the server agrees, a version 2 handshake. A lost
    /// WebSocket is then replaced at once by a new one with the same `id`: both sides replay what the other has not
    /// acknowledged, so no message is lost or repeated, pending invocations and streams go on, and the connection
    /// id and groups stay (no ``HubClientEvent`` is reported). This happens at every drop. When the server
    /// refuses (the connection is gone, 404) or ``statefulReconnectTimeout`` passes, the connection falls back to
    /// ``reconnectDelays``. Needs negotiation (not ``skipNegotiation``). Default: false.
    public var useStatefulReconnect: Bool
    /// The most bytes of sent messages kept until the server acknowledges them; past it sends wait for an `Ack`.
    /// Default: 100 000 (the JS and .NET clients' default).
    public var statefulReconnectBufferSize: Int
    /// How long after a drop the client keeps trying to resume (stateful reconnect) while its attempts fail
    /// without an answer from the server (the network is still down, or the new WebSocket drops during the
    /// replay); attempts follow each other after 0.1, 0.25, 0.5, then every 1 s. Match it to the server's
    /// disconnect timeout (ASP.NET Core's and ours default to 15 s): past it the server has ended the connection
    /// anyway. Default: 15 s.
    public var statefulReconnectTimeout: Duration

    /// SignalR's default reconnect delays: 0, 2, 10, 30 seconds.
    public static let defaultReconnectDelays: [Duration] = [.zero, .seconds(2), .seconds(10), .seconds(30)]

    public init(
        hubProtocol: HubProtocolChoice = .json,
        accessTokenProvider: (@Sendable () async throws -> String?)? = nil,
        headers: [(name: String, value: String)] = [],
        skipNegotiation: Bool = false,
        keepAliveInterval: Duration = .seconds(15),
        serverTimeout: Duration = .seconds(30),
        handshakeTimeout: Duration = .seconds(15),
        reconnectDelays: [Duration]? = nil,
        webSocket: WebSocketClientConfiguration = .init()
    ) {
        self.hubProtocol = hubProtocol
        self.accessTokenProvider = accessTokenProvider
        self.headers = headers
        self.skipNegotiation = skipNegotiation
        self.keepAliveInterval = keepAliveInterval
        self.serverTimeout = serverTimeout
        self.handshakeTimeout = handshakeTimeout
        self.reconnectDelays = reconnectDelays
        self.webSocket = webSocket
        self.maxNegotiateRedirects = 10
        self.streamBufferLimit = 1000
        self.invocationQueueLimit = 1000
        self.useStatefulReconnect = false
        self.statefulReconnectBufferSize = 100_000
        self.statefulReconnectTimeout = .seconds(15)
    }
}

/// What happened to a connection's transport, in order (``HubClientConnection/events``).
public enum HubClientEvent: Sendable {
    /// The connection was lost and automatic reconnection begins; the error says why.
    case reconnecting(HubClientError)
    /// A new connection is open (its id; nil with `skipNegotiation`). Handlers stay registered; invocations
    /// pending at the loss failed.
    case reconnected(connectionId: String?)
    /// The connection is over for good: nil after ``HubClientConnection/run()`` was cancelled, otherwise why.
    case closed(HubClientError?)
}
