import Backplane
import HubProtocol
import NIOConcurrencyHelpers
import ServiceLifecycle
import WebSocketServer

/// A hub mounted at a path of a ``WebSocketServer/Server``: `POST {path}/negotiate` and the three transports of
/// TransportProtocols.md at `{path}`: WebSockets, Server-Sent Events and long polling.
///
/// ```swift
/// let chat = HubEndpoint(path: "/chat", hub: ChatHub.self)
/// let server = Server(
///     configuration: .init(port: 5000), routes: [chat.webSocketRoute],
///     eventStreamRoutes: [chat.eventStreamRoute], httpRoutes: chat.httpRoutes)
/// // Run `chat` as a Service next to the server (long-polling connections run in its task group).
/// ```
///
/// - Negotiate (``negotiateRoute``): `POST` only (others 405); the authenticator's `.rejected` → 401; versions 0
///   and 1 (absent `negotiateVersion` is 0, as both Python clients send; version 0 answers `connectionId` only,
///   which is then the `id=`; version 1 adds a secret `connectionToken`); `availableTransports` lists the enabled
///   transports (``HubConfiguration/transports``) in the order WebSockets `["Text","Binary"]`, ServerSentEvents
///   `["Text"]`, LongPolling `["Text","Binary"]` (long polling only while the endpoint runs).
/// - WebSocket (``webSocketRoute``): `GET {path}?id=…`; no `id` creates the connection on the spot (clients'
///   "skip negotiation"); an unknown or expired `id` is refused with 404 and one already connected with 409, on
///   the upgrade request itself, except for a connection with stateful reconnect
///   (``HubConfiguration/allowStatefulReconnects``): its `id` is accepted again until the connection ends (after
///   ``HubConfiguration/statefulReconnectDisconnectTimeout`` without a WebSocket), and the new WebSocket resumes
///   it, replacing the old one. The authenticator runs again on the upgrade (`Authorization` header or
///   `access_token` query parameter); its user wins over the negotiated one.
/// - Server-Sent Events (``eventStreamRoute``): `GET {path}?id=…` with `Accept: text/event-stream` streams every
///   message to the client as one event (`data: <json>␞`), JSON only; the connection ends with the response.
///   Missing `id` → 400, unknown → 404, already bound → 409 (or 400 when it is long polling).
/// - Long polling (``transportRoute``, `GET` without `Accept: text/event-stream`): the first poll answers 200 with
///   an empty body at once; a later one answers 200 with one message (`application/octet-stream`), 200 empty
///   after ``HubConfiguration/longPollingTimeout``, or 204 when a newer poll took over or the connection ended.
///   No poll waiting for ``HubConfiguration/longPollingDisconnectTimeout`` ends the connection. One message per
///   poll, because signalrcore 1.0.2 takes only the first message of a response.
/// - `POST {path}?id=…` (``transportRoute``): the client's messages (the body, at most the maximum message size),
///   200 once taken; a concurrent POST → 409, a WebSocket connection → 405, unknown → 404, no `id` → 400.
/// - `DELETE {path}?id=…`: ends a long-polling connection, 202 (its waiting poll gets 204); other transports 400.
/// - The authenticator runs on every SSE, poll, POST and DELETE request too (`.rejected` → 401).
public final class HubEndpoint<H: Hub>: Sendable {
    /// The hub's path, e.g. `/chat`.
    public let path: String
    /// Timeouts, limits and protocols of every connection.
    public let configuration: HubConfiguration
    let authenticator: HubAuthenticator
    let methods: [String: HubMethod]
    let authorizations: [String: HubAuthorization]
    let manager: HubLifetimeManager
    let registry = NIOLockedValueBox(Registry())
    /// Every connection from its upgrade to its end (also those still in their handshake), for ``closeAll``.
    private let live = NIOLockedValueBox<[ObjectIdentifier: HubConnection<H>]>([:])
    /// Runs the long-polling connections (in ``run()``'s task group).
    let host = HubConnectionHost()

    /// - Parameters:
    ///   - path: where the hub is served (the negotiate route is `path + "/negotiate"`).
    ///   - hub: the hub type.
    ///   - configuration: timeouts, limits, protocols.
    ///   - authenticator: the auth hook; default ``HubAuthenticator/anonymous``.
    ///   - backplane: carries messages and group changes to the hub's endpoints on other servers (scope: `path`,
    ///     the same on every server); nil (the default) for a hub on one server. See "Several servers" below.
    ///
    /// ## Several servers
    /// With a backplane the endpoint must run (as a `Service`, or ``run()``): its worker registers the hub's scope,
    /// keeps the backplane's subscriptions following the local connections, users and groups, and publishes.
    /// - Local first: a send reaches this server's connections at once, exactly as without a backplane, and is
    ///   queued for the other servers when it may have recipients there (`all`, `allExcept`, `others`, groups,
    ///   users, and connections not held here), serialized once per hub protocol. Hub sends never wait for the
    ///   broker: the queue is bounded (``HubConfiguration/backplanePublishQueueLimit``,
    ///   ``HubConfiguration/backplanePublishQueueByteLimit``) and drops (and counts) what does not fit.
    /// - At most once across servers: what is published while the broker is down or slow is lost for the other
    ///   servers (counted in ``backplaneStatistics``), never duplicated; local delivery does not depend on it.
    /// - Group changes of a connection of another server are acknowledged by its server
    ///   (``HubGroups/add(_:to:)``); client results (``HubClientProxy/invoke(_:_:returning:timeout:)``) reach only
    ///   this server's connections.
    public init(
        path: String, hub: H.Type = H.self, configuration: HubConfiguration = .init(),
        authenticator: HubAuthenticator = .anonymous, backplane: (any Backplane)? = nil
    ) {
        self.path = path
        self.configuration = configuration
        self.authenticator = authenticator
        self.manager = HubLifetimeManager(
            link: backplane.map { HubBackplaneLink(backplane: $0, scope: path, configuration: configuration) },
            configuration: configuration)
        var table = HubMethods<H>()
        H.registerMethods(&table)
        self.methods = table.table
        self.authorizations = table.authorizations
    }

    /// Send to the hub's connections from outside a hub method (ASP.NET Core's `IHubContext.Clients`); `caller`
    /// and `others` have no caller here (nobody and everybody).
    public var clients: HubClients { HubClients(manager: manager, callerId: nil) }
    /// Group membership from outside a hub method.
    public var groups: HubGroups { HubGroups(manager: manager) }
    /// The number of connected clients (after their handshake).
    public var connectionCount: Int { manager.count }
    /// The backplane's counters (published, dropped, failed, queued, received); nil without a backplane.
    public var backplaneStatistics: HubBackplaneStatistics? { manager.link?.statistics }

    /// Closes every connection with a Close message (HubProtocol.md "Close"), `allowReconnect` true by default so
    /// that clients with automatic reconnect come back (to this server after a restart, or to another), and waits
    /// until they have ended or `gracePeriod` has passed. New connections are still accepted meanwhile.
    public func closeAll(error: String? = nil, allowReconnect: Bool = true, gracePeriod: Duration = .seconds(2)) async {
        // Every live connection, not only the registered ones: one whose handshake answer is on its way must get
        // the Close message too.
        let connections = live.withLockedValue { Array($0.values) }
        for connection in connections { connection.requestClose(error: error, allowReconnect: allowReconnect) }
        let deadline = ContinuousClock.now + gracePeriod
        while ContinuousClock.now < deadline, !live.withLockedValue({ $0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    // MARK: Negotiate

    /// `POST {path}/negotiate`.
    public var negotiateRoute: HTTPRoute {
        HTTPRoute(path: path + "/negotiate", methods: [.post], maxBodyLength: 4096) { [self] request in
            await negotiate(request)
        }
    }

    func negotiate(_ request: HTTPRouteRequest) async -> PlainHTTPResponse {
        let auth = await authenticator.authenticate(
            .init(bearerToken: request.bearerToken, request: request.request, connection: request.connection))
        let user: HubUser?
        switch auth {
        case .rejected: return PlainHTTPResponse(status: .unauthorized, text: "Unauthorized\n")
        case .anonymous: user = nil
        case .authenticated(let authenticated): user = authenticated
        }
        if let rule = H.authorization, !rule.allows(user) {
            return user == nil
                ? PlainHTTPResponse(status: .unauthorized, text: "Unauthorized\n")
                : PlainHTTPResponse(status: .forbidden, text: "Forbidden\n")
        }
        let resolved = NegotiateRequest.resolve(
            negotiateVersion: request.queryValue("negotiateVersion") ?? request.queryValue("NegotiateVersion"),
            useStatefulReconnect: request.queryValue("useStatefulReconnect")
                ?? request.queryValue("UseStatefulReconnect"))
        let version: Int
        let stateful: Bool
        switch resolved {
        case .failure(let error): return json(NegotiateResponse.error(error.message).encoded())
        case .success(let negotiated):
            version = negotiated.version
            // Only when the client asked (the JS client refuses an answer it did not ask for), and only with
            // negotiate version 1: with version 0 the `id` a resume presents is the public connection id, which
            // anyone who learnt it could use to take the connection over.
            stateful = negotiated.useStatefulReconnect && configuration.allowStatefulReconnects && version >= 1
        }
        let connectionId = Self.randomId()
        let token = version >= 1 ? Self.randomId() : connectionId
        let now = ContinuousClock.now
        let timeout = configuration.negotiatedConnectionTimeout
        let limit = configuration.maximumPendingConnections
        let stored = registry.withLockedValue { registry -> Bool in
            registry.pending = registry.pending.filter { now - $0.value.created < timeout }
            // HTTP sessions whose GET never came (only POSTs, or nothing).
            registry.http = registry.http.filter { $0.value.isStarted || now - $0.value.created < timeout }
            guard registry.pending.count < limit else { return false }
            registry.pending[token] = Pending(
                connectionId: connectionId, user: user, created: now, statefulReconnect: stateful)
            return true
        }
        guard stored else { return PlainHTTPResponse(status: .serviceUnavailable, text: "Too many connections\n") }
        let enabled = configuration.transports
        var transports: [AvailableTransport] = []
        if enabled.contains(.webSockets) { transports.append(.webSockets) }
        if enabled.contains(.serverSentEvents) { transports.append(.serverSentEvents) }
        if enabled.contains(.longPolling), host.isRunning { transports.append(.longPolling) }
        let body = NegotiateResponse.connection(
            NegotiateConnection(
                negotiateVersion: version, connectionId: connectionId, connectionToken: version >= 1 ? token : nil,
                availableTransports: transports, useStatefulReconnect: stateful)
        ).encoded()
        return json(body)
    }

    private func json(_ body: [UInt8]) -> PlainHTTPResponse {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        return PlainHTTPResponse(response: HTTPResponse(status: .ok, headerFields: fields), body: body)
    }

    /// 16 random bytes in base64url without padding (22 characters), as ASP.NET Core's ids.
    static func randomId() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var word: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { word |= UInt32(byte) << (16 - 8 * UInt32(offset)) }
            for position in 0...chunk.count {
                output.append(alphabet[Int(word >> (18 - 6 * UInt32(position)) & 63)])
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: WebSocket transport

    struct Pending {
        var connectionId: String
        var user: HubUser?
        var created: ContinuousClock.Instant
        /// Negotiated with `useStatefulReconnect` (and allowed).
        var statefulReconnect = false
    }

    /// A negotiated connection between its accepted upgrade and its handler, keyed by its token.
    struct Claimed {
        var connectionId: String
        var user: HubUser?
        var created: ContinuousClock.Instant
        var statefulReconnect = false
    }

    struct Registry {
        var pending: [String: Pending] = [:]
        var claimed: [String: Claimed] = [:]
        /// Tokens of connections whose WebSocket is open (or being opened).
        var active: Set<String> = []
        /// Connections on Server-Sent Events or long polling, from their first request to their end.
        var http: [String: HubHTTPSession] = [:]
        /// WebSocket connections with stateful reconnect, from their handshake to their end, by token: a new
        /// WebSocket with one of these ids resumes the connection.
        var stateful: [String: HubConnection<H>] = [:]
    }

    /// `GET {path}` with `Upgrade: websocket` (or an extended CONNECT over HTTP/2, RFC 8441).
    public var webSocketRoute: WebSocketRoute {
        WebSocketRoute(
            path: path,
            shouldUpgrade: { [self] request, info in await shouldUpgrade(request, info) },
            handler: .async { [self] webSocket, accepted in await serve(webSocket, accepted) }
        )
    }

    func authenticate(_ request: UpgradeRequest, _ info: ConnectionInfo) async -> HubAuthenticator.Result {
        let token = HTTPQuery.bearerToken(
            authorization: request.request.headerFields[.authorization], query: request.query)
        return await authenticator.authenticate(.init(bearerToken: token, request: request.request, connection: info))
    }

    func shouldUpgrade(_ request: UpgradeRequest, _ info: ConnectionInfo) async -> UpgradeDecision {
        var user: HubUser?
        switch await authenticate(request, info) {
        case .rejected: return .reject(status: .unauthorized, body: "Unauthorized\n")
        case .anonymous: user = nil
        case .authenticated(let authenticated): user = authenticated
        }
        let id = HTTPQuery.value("id", in: request.query) ?? ""
        // The hub's rule applies to the transport's user, or to the negotiated one when the upgrade has none.
        let negotiatedUser = id.isEmpty ? nil : registry.withLockedValue { $0.pending[id]?.user }
        if let rule = H.authorization, !rule.allows(user ?? negotiatedUser) {
            return (user ?? negotiatedUser) == nil
                ? .reject(status: .unauthorized, body: "Unauthorized\n")
                : .reject(status: .forbidden, body: "Forbidden\n")
        }
        guard configuration.transports.contains(.webSockets) else {
            return .reject(status: .notFound, body: "WebSockets transport is disabled\n")
        }
        // No id: skip-negotiation; the handler creates the connection.
        guard !id.isEmpty else { return .accept() }
        let now = ContinuousClock.now
        let timeout = configuration.negotiatedConnectionTimeout
        return registry.withLockedValue { registry -> UpgradeDecision in
            // A claim its handler never took (the client left during the 101) frees its id.
            for (token, claim) in registry.claimed where now - claim.created >= timeout {
                registry.claimed[token] = nil
                registry.active.remove(token)
            }
            // Stateful reconnect: the client comes back to its connection (which may not have seen the drop yet;
            // the new WebSocket replaces the old one).
            // A connection made by a user is resumed only by the same user.
            if let connection = registry.stateful[id] {
                if let owner = connection.userId, owner != user?.id {
                    return .reject(status: .forbidden, body: "Forbidden\n")
                }
                return .accept()
            }
            if registry.active.contains(id) {
                return .reject(status: .conflict, body: "Connection ID is already used by another connection.\n")
            }
            guard let pending = registry.pending.removeValue(forKey: id), now - pending.created < timeout else {
                return .reject(status: .notFound, body: "No Connection with that ID\n")
            }
            registry.active.insert(id)
            registry.claimed[id] = Claimed(
                connectionId: pending.connectionId, user: user ?? pending.user, created: now,
                statefulReconnect: pending.statefulReconnect)
            return .accept()
        }
    }

    func serve(_ webSocket: WebSocket, _ accepted: AcceptedUpgrade) async {
        let token: String
        let connectionId: String
        let user: HubUser?
        var statefulToken: String?
        if let id = HTTPQuery.value("id", in: accepted.request.query), !id.isEmpty {
            if let connection = registry.withLockedValue({ $0.stateful[id] }) {
                // A stateful reconnect: the connection reads and writes this WebSocket from now on; it stays open
                // until the connection closes it (or it drops too).
                if connection.takeOver(webSocket) {
                    _ = await webSocket.closeStatus
                } else {
                    await webSocket.close(code: .goingAway, reason: "connection ended")
                }
                return
            }
            guard let claimed = registry.withLockedValue({ $0.claimed.removeValue(forKey: id) }) else {
                await webSocket.close(code: .internalError, reason: "unknown connection")
                return
            }
            (token, connectionId, user) = (id, claimed.connectionId, claimed.user)
            if claimed.statefulReconnect { statefulToken = id }
        } else {
            // Skip-negotiation: the connection is made here. The authenticator runs a second time for its user
            // (shouldUpgrade cannot hand a value to the handler).
            switch await authenticate(accepted.request, accepted.connection) {
            case .rejected:
                await webSocket.close(code: .policyViolation, reason: "unauthorized")
                return
            case .anonymous: user = nil
            case .authenticated(let authenticated): user = authenticated
            }
            connectionId = Self.randomId()
            token = connectionId
            _ = registry.withLockedValue { $0.active.insert(token) }
        }
        let connection = HubConnection(
            endpoint: self, transport: .webSocket(webSocket), connectionId: connectionId, user: user,
            statefulToken: statefulToken)
        await runConnection(connection)
        registry.withLockedValue { registry in
            registry.active.remove(token)
            registry.stateful[token] = nil
        }
    }

    func runConnection(_ connection: HubConnection<H>) async {
        let key = ObjectIdentifier(connection)
        live.withLockedValue { $0[key] = connection }
        await connection.run()
        _ = live.withLockedValue { $0.removeValue(forKey: key) }
    }
}

extension HubEndpoint: Service {
    /// As a swift-service-lifecycle `Service`: runs the long-polling connections in its task group (long polling
    /// is served and listed by negotiate only while this runs), waits for the graceful shutdown, then
    /// ``closeAll(error:allowReconnect:gracePeriod:)``
    /// (Close messages with `allowReconnect: true`) and ends the long-polling connections left. List it after the
    /// ``WebSocketServer/Server`` in the `ServiceGroup`: services shut down in reverse order, so the hub's clients
    /// get their Close message before the server closes the WebSockets with 1001. Cancellation ends it at once.
    ///
    /// With a backplane it also runs the backplane's worker (registration, subscriptions, publishing; see
    /// ``init(path:hub:configuration:authenticator:backplane:)``) until it ends, then unregisters the hub's scope.
    public func run() async throws {
        host.begin()
        await withTaskGroup(of: Void.self) { group in
            let shutdown = NIOLockedValueBox(false)
            if let link = manager.link {
                group.addTask {
                    await link.run(receiver: self.manager) { self.manager.startBackplane() }
                }
            }
            group.addTask {
                do {
                    try await gracefulShutdown()
                    shutdown.withLockedValue { $0 = true }
                } catch {
                    // cancelled
                }
                self.host.finish()
            }
            while let job = await host.next() {
                group.addTask { await job() }
            }
            if shutdown.withLockedValue({ $0 }) { await closeAll() }
            manager.link?.finish()
            group.cancelAll()
        }
    }
}
