import HTTPTypes
import HubProtocol
import Logging
import WebSocketServer

/// Settings of a ``HubEndpoint``. Defaults are ASP.NET Core SignalR's (`HubOptions`,
/// `HttpConnectionDispatcherOptions`).
public struct HubConfiguration: Sendable {
    /// A Ping is sent when nothing else was sent for this long (HubProtocol.md "Ping"); not on long polling,
    /// whose polls are the keep-alive. Default 15 s.
    public var keepAliveInterval: Duration
    /// A connection that sent nothing (not even a Ping) for this long is closed with an error Close message.
    /// Default 30 s (clients ping every 15 s). The time a hub method runs inline (the connection does not read
    /// meanwhile) does not count.
    public var clientTimeoutInterval: Duration
    /// The time a client has, from the WebSocket upgrade (or the first SSE or long-polling GET), to complete the
    /// hub handshake; then the connection is closed without an answer. Default 15 s.
    public var handshakeTimeout: Duration
    /// Decoding bounds; `maximumMessageSize` (default 32 KiB) is the largest hub message accepted: a larger one
    /// closes the connection with an error Close message. The server's WebSocket `maxMessageLength` bounds a whole
    /// frame (which may hold several messages).
    public var limits: HubProtocolLimits
    /// The most bytes a connection may have queued for sending, or handed to the socket and not yet written. A
    /// message that would pass it closes the connection at once (the client is not reading; nothing more is
    /// queued). Streams wait below half of it instead. Default 1 MiB (1 048 576).
    public var maximumBufferedBytes: Int
    /// How many items of one client-to-server stream may wait for the hub method; past it the connection stops
    /// reading until the method catches up. Default 10.
    public var streamBufferCapacity: Int
    /// The most streams (server-to-client and client-to-server together) a connection may have open; an
    /// invocation past it fails with an error Completion. Default 100.
    public var maximumStreamsPerConnection: Int
    /// The hub protocols offered in the handshake. Default both, `["json", "messagepack"]`.
    public var protocols: [String]
    /// How long a negotiated connection id waits for its WebSocket (or its first SSE or long-polling GET) before
    /// it is forgotten (404 afterwards).
    /// Default 15 s.
    public var negotiatedConnectionTimeout: Duration
    /// The most negotiated ids waiting for their WebSocket; a negotiate past it is answered 503. Default 10 000.
    public var maximumPendingConnections: Int
    /// The transports served and listed by negotiate (always in the order WebSockets, ServerSentEvents,
    /// LongPolling; TransportProtocols.md). Default all three. An HTTP transport also needs its routes on the
    /// server (``HubEndpoint/eventStreamRoute``, ``HubEndpoint/transportRoute``), and long polling needs the
    /// endpoint to run (as a `Service`, or ``HubEndpoint/run()``): it is listed only while it does.
    public var transports: Set<HubTransport>
    /// How long a long poll waits for a message before it is answered 200 with an empty body (ASP.NET Core's
    /// `LongPollingOptions.PollTimeout`). Default 90 s.
    public var longPollingTimeout: Duration
    /// A long-polling client with no poll waiting for this long is considered gone and its connection ends
    /// (ASP.NET Core's `DisconnectTimeout`). Default 15 s.
    public var longPollingDisconnectTimeout: Duration
    /// Whether clients may use stateful reconnect (ASP.NET Core's `AllowStatefulReconnects`; HubProtocol.md
    /// "Stateful Reconnect"): negotiate answers `"useStatefulReconnect": true` to a client that asked with
    /// `useStatefulReconnect=true`, and with a version 2 handshake the connection numbers, acknowledges and replays
    /// its messages. Its WebSocket may then drop and a new one with the same `id` resumes it: no message lost or
    /// repeated, the connection id, groups, user, items and streams kept. WebSockets only. Default false.
    public var allowStatefulReconnects: Bool
    /// The most bytes of sent messages kept for replay until the client acknowledges them (ASP.NET Core's
    /// `StatefulReconnectBufferSize`). Above it the connection's writer waits for an `Ack` (messages then queue
    /// in the outbound buffer, bounded by ``maximumBufferedBytes``). Default 100 000.
    ///
    /// While the client is disconnected nothing is acknowledged, so a connection holds at most this plus
    /// ``maximumBufferedBytes`` for it. Server-to-client streams pause when the outbound buffer is half full and
    /// go on after the resume. A message that would pass ``maximumBufferedBytes`` (a broadcast, a group or
    /// caller send; these never wait, so that one absent client cannot hold up a sender or the other
    /// connections) ends the connection at once instead of at the disconnect timeout: `onDisconnected` runs
    /// with a ``HubConnectionError`` whose reason begins "outbound buffer full while the client was
    /// disconnected", the id is forgotten (the client's resume gets 404 or a closed WebSocket, and a client with
    /// automatic reconnection starts a new connection), and the other connections are untouched. ASP.NET Core
    /// makes the sender wait instead, up to the disconnect timeout.
    public var statefulReconnectBufferSize: Int
    /// How long a stateful connection whose WebSocket dropped waits for the client to reconnect before it ends and
    /// `onDisconnected` runs (ASP.NET Core's `DisconnectTimeout`). Default 15 s. A connection whose buffers fill
    /// while it waits ends sooner (see ``statefulReconnectBufferSize``).
    public var statefulReconnectDisconnectTimeout: Duration
    /// Where connections log (with the public connection id as metadata; tokens never): refused handshakes,
    /// protocol errors and failed invocations at `debug`. Default: a logger labelled `hubs`.
    public var logger: Logger
    /// With a backplane: how long ``HubGroups/add(_:to:)`` and ``HubGroups/remove(_:from:)`` of a connection of
    /// another server wait for that server's acknowledgement before they throw. Default 5 s.
    public var backplaneGroupChangeTimeout: Duration
    /// With a backplane: how long a new connection (after its handshake, before `onConnected`) and a group's first
    /// local member wait for the backplane to take their subscription, so that messages from other servers reach
    /// them from then on. Past it they go on without (a slow or unreachable broker delays local traffic by at
    /// most this). Default 1 s.
    public var backplaneInterestTimeout: Duration
    /// With a backplane: the most messages waiting to be published to the other servers. Hub sends queue their
    /// message and return; the endpoint's worker publishes them in order. A message past the limit is dropped for
    /// the other servers (local delivery is unaffected) and counted in
    /// ``HubEndpoint/backplaneStatistics`` `.dropped`. Default 10 000.
    public var backplanePublishQueueLimit: Int
    /// With a backplane: the most payload bytes waiting to be published (the same drop policy). Default 16 MiB
    /// (16 777 216).
    public var backplanePublishQueueByteLimit: Int

    public init(
        keepAliveInterval: Duration = .seconds(15),
        clientTimeoutInterval: Duration = .seconds(30),
        handshakeTimeout: Duration = .seconds(15),
        limits: HubProtocolLimits = .default,
        maximumBufferedBytes: Int = 1 << 20,
        streamBufferCapacity: Int = 10,
        maximumStreamsPerConnection: Int = 100,
        protocols: [String] = [JSONHubProtocol.name, MessagePackHubProtocol.name],
        negotiatedConnectionTimeout: Duration = .seconds(15),
        maximumPendingConnections: Int = 10_000,
        transports: Set<HubTransport> = Set(HubTransport.allCases),
        longPollingTimeout: Duration = .seconds(90),
        longPollingDisconnectTimeout: Duration = .seconds(15)
    ) {
        self.transports = transports
        self.longPollingTimeout = longPollingTimeout
        self.longPollingDisconnectTimeout = longPollingDisconnectTimeout
        self.keepAliveInterval = keepAliveInterval
        self.clientTimeoutInterval = clientTimeoutInterval
        self.handshakeTimeout = handshakeTimeout
        self.limits = limits
        self.maximumBufferedBytes = maximumBufferedBytes
        self.streamBufferCapacity = streamBufferCapacity
        self.maximumStreamsPerConnection = maximumStreamsPerConnection
        self.protocols = protocols
        self.negotiatedConnectionTimeout = negotiatedConnectionTimeout
        self.maximumPendingConnections = maximumPendingConnections
        self.allowStatefulReconnects = false
        self.statefulReconnectBufferSize = 100_000
        self.statefulReconnectDisconnectTimeout = .seconds(15)
        self.logger = Logger(label: "hubs")
        self.backplaneGroupChangeTimeout = .seconds(5)
        self.backplaneInterestTimeout = .seconds(1)
        self.backplanePublishQueueLimit = 10_000
        self.backplanePublishQueueByteLimit = 16 << 20
    }
}

/// Produces the user of a request (negotiate and every transport request): the one auth hook of the hub.
public struct HubAuthenticator: Sendable {
    /// What the authenticator sees of a request.
    public struct Request: Sendable {
        /// `Authorization: Bearer …`, else the `access_token` query parameter (never logged by this module).
        public var bearerToken: String?
        /// The whole request head.
        public var request: HTTPRequest
        /// Addresses and TLS.
        public var connection: ConnectionInfo
    }

    /// The answer.
    public enum Result: Sendable {
        /// Allowed, without a user (``HubClients/user(_:)`` does not reach it).
        case anonymous
        /// Allowed as this user.
        case authenticated(HubUser)
        /// Refused: 401 Unauthorized on negotiate, on the WebSocket upgrade and on every SSE or long-polling
        /// request.
        case rejected
    }

    /// Produces the answer for a negotiate, WebSocket, SSE, poll, POST or DELETE request. Called once per request
    /// (twice for a skip-negotiation upgrade: before the 101 and when the connection is made).
    public var authenticate: @Sendable (Request) async -> Result

    public init(_ authenticate: @escaping @Sendable (Request) async -> Result) {
        self.authenticate = authenticate
    }

    /// Everyone is anonymous.
    public static let anonymous = HubAuthenticator { _ in .anonymous }

    /// A bearer token is required and mapped to a user by `user(token)` (nil refuses it).
    public static func bearer(_ user: @escaping @Sendable (String) async -> HubUser?) -> HubAuthenticator {
        HubAuthenticator { request in
            guard let token = request.bearerToken, let user = await user(token) else { return .rejected }
            return .authenticated(user)
        }
    }
}
