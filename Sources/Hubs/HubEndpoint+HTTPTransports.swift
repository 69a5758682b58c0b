import HTTPTypes
import HubProtocol
import NIOConcurrencyHelpers
import NIOCore
import WebSocketServer

/// The Server-Sent Events and long-polling transports of TransportProtocols.md ("Server-Sent Events", "Long
/// Polling"), and the POST and DELETE requests they share.
extension HubEndpoint {
    /// `GET {path}?id=…` with `Accept: text/event-stream`: the receiving half of the Server-Sent Events transport.
    /// The hub's Ping messages are its keep-alive (no SSE comments); its buffer is the connection's
    /// ``HubConfiguration/maximumBufferedBytes``.
    public var eventStreamRoute: EventStreamRoute {
        EventStreamRoute(
            path: path,
            configuration: .init(heartbeatInterval: nil, maxBufferedBytes: configuration.maximumBufferedBytes),
            shouldAccept: { [self] request, info in await acceptEventStream(request, info) },
            handler: .async { [self] request, writer in await serveEventStream(request, writer) }
        )
    }

    /// `GET` (long poll), `POST` (client-to-server messages of SSE and long polling) and `DELETE` (end a
    /// long-polling connection) on `{path}`; the body is bounded by the hub's maximum message size (413 past it).
    public var transportRoute: HTTPRoute {
        HTTPRoute(
            path: path, methods: [.get, .post, .delete],
            maxBodyLength: max(configuration.limits.maximumMessageSize, 1024)
        ) { [self] request in
            await transportRequest(request)
        }
    }

    /// ``negotiateRoute`` and ``transportRoute``, for the server's `httpRoutes`.
    public var httpRoutes: [HTTPRoute] { [negotiateRoute, transportRoute] }

    // MARK: Sessions

    enum SessionLookup {
        case session(HubHTTPSession)
        case webSocket
        case unknown
    }

    /// The HTTP session of `id`; a negotiated id without one gets one when `create` (its first request).
    func session(_ id: String, create: Bool, user: HubUser?) -> SessionLookup {
        let now = ContinuousClock.now
        let timeout = configuration.negotiatedConnectionTimeout
        let limit = max(configuration.limits.maximumMessageSize, 1024)
        return registry.withLockedValue { registry -> SessionLookup in
            if let session = registry.http[id] { return .session(session) }
            if registry.active.contains(id) { return .webSocket }
            guard create, let pending = registry.pending[id], now - pending.created < timeout else { return .unknown }
            registry.pending[id] = nil
            let session = HubHTTPSession(
                token: id, connectionId: pending.connectionId, user: user ?? pending.user, inboundLimit: limit)
            registry.http[id] = session
            return .session(session)
        }
    }

    private func forget(_ session: HubHTTPSession) {
        registry.withLockedValue { registry in
            if registry.http[session.token] === session { registry.http[session.token] = nil }
        }
    }

    private enum Access {
        case allowed(HubUser?)
        case refused(HTTPResponse.Status, String)
    }

    /// The authenticator on a transport request, then the hub's rule for its user (or the negotiated one).
    private func access(bearer: String?, request: HTTPRequest, info: ConnectionInfo) async -> Access {
        switch await authenticator.authenticate(.init(bearerToken: bearer, request: request, connection: info)) {
        case .rejected: return .refused(.unauthorized, "Unauthorized")
        case .anonymous: return .allowed(nil)
        case .authenticated(let user): return .allowed(user)
        }
    }

    private func authorize(_ user: HubUser?) -> (HTTPResponse.Status, String)? {
        guard let rule = H.authorization, !rule.allows(user) else { return nil }
        return user == nil ? (.unauthorized, "Unauthorized") : (.forbidden, "Forbidden")
    }

    // MARK: Server-Sent Events

    func acceptEventStream(_ request: EventStreamRequest, _ info: ConnectionInfo) async -> EventStreamDecision {
        guard configuration.transports.contains(.serverSentEvents) else {
            return .reject(status: .notFound, body: "ServerSentEvents transport is disabled")
        }
        guard let id = request.queryValue("id"), !id.isEmpty else {
            return .reject(status: .badRequest, body: "Connection ID required")
        }
        let user: HubUser?
        switch await access(bearer: request.bearerToken, request: request.request, info: info) {
        case .refused(let status, let text): return .reject(status: status, body: text)
        case .allowed(let allowed): user = allowed
        }
        let session: HubHTTPSession
        switch self.session(id, create: true, user: user) {
        case .unknown: return .reject(status: .notFound, body: "No Connection with that ID")
        case .webSocket: return .reject(status: .conflict, body: "Connection ID is already used by another connection.")
        case .session(let found): session = found
        }
        if let refusal = authorize(user ?? session.user) { return .reject(status: refusal.0, body: refusal.1) }
        guard session.bind(.serverSentEvents) else {
            if session.kind == .longPolling || session.isEnded {
                return .reject(status: .badRequest, body: "Cannot change transports mid-connection")
            }
            return .reject(status: .conflict, body: "Connection ID is already used by another connection.")
        }
        var fields = HTTPFields()
        if let pragma = HTTPField.Name("Pragma") { fields[pragma] = "no-cache" }
        return .accept(headerFields: fields)
    }

    func serveEventStream(_ request: EventStreamRequest, _ writer: EventStreamWriter) async {
        guard let id = request.queryValue("id"),
            let session = registry.withLockedValue({ $0.http[id] }), session.kind == .serverSentEvents
        else { return }
        session.markStarted()
        let connection = HubConnection(
            endpoint: self, transport: .serverSentEvents(session, writer), connectionId: session.connectionId,
            user: session.user)
        await runConnection(connection)
        session.end(error: nil)
        forget(session)
    }

    // MARK: Long polling, POST, DELETE

    func transportRequest(_ request: HTTPRouteRequest) async -> PlainHTTPResponse {
        guard let id = request.queryValue("id"), !id.isEmpty else {
            return PlainHTTPResponse(status: .badRequest, text: "Connection ID required")
        }
        let user: HubUser?
        switch await access(bearer: request.bearerToken, request: request.request, info: request.connection) {
        case .refused(let status, let text): return PlainHTTPResponse(status: status, text: text)
        case .allowed(let allowed): user = allowed
        }
        let method = request.request.method
        let session: HubHTTPSession
        switch self.session(id, create: method != .delete, user: user) {
        case .unknown:
            return PlainHTTPResponse(status: .notFound, text: "No Connection with that ID")
        case .webSocket:
            if method == .post {
                return PlainHTTPResponse(
                    status: .methodNotAllowed, text: "POST requests are not allowed for WebSocket connections.")
            }
            return PlainHTTPResponse(status: .badRequest, text: "Cannot change transports mid-connection")
        case .session(let found):
            session = found
        }
        if let refusal = authorize(user ?? session.user) {
            return PlainHTTPResponse(status: refusal.0, text: refusal.1)
        }
        switch method {
        case .post:
            switch await session.post(request.body) {
            case .accepted: return PlainHTTPResponse(response: HTTPResponse(status: .ok))
            case .conflict:
                return PlainHTTPResponse(status: .conflict, text: "Another POST is in progress for this connection.")
            case .gone: return PlainHTTPResponse(status: .notFound, text: "No Connection with that ID")
            }
        case .delete:
            guard session.kind != .serverSentEvents else {
                return PlainHTTPResponse(status: .badRequest, text: "Cannot terminate this connection using DELETE.")
            }
            session.end(error: nil)
            if !session.isStarted { forget(session) }
            return PlainHTTPResponse(response: HTTPResponse(status: .accepted))
        case .get:
            return await longPoll(session)
        default:
            // HEAD would take a message and drop it.
            var fields = HTTPFields()
            fields[.allow] = "DELETE, GET, POST"
            return PlainHTTPResponse(status: .methodNotAllowed, text: "Method Not Allowed", headerFields: fields)
        }
    }

    private func longPoll(_ session: HubHTTPSession) async -> PlainHTTPResponse {
        guard configuration.transports.contains(.longPolling) else {
            return PlainHTTPResponse(status: .notFound, text: "LongPolling transport is disabled")
        }
        switch session.kind {
        case .serverSentEvents:
            return PlainHTTPResponse(status: .badRequest, text: "Cannot change transports mid-connection")
        case .unbound:
            if session.bind(.longPolling) {
                session.markStarted()
                let connection = HubConnection(
                    endpoint: self, transport: .longPolling(session), connectionId: session.connectionId,
                    user: session.user)
                let hosted = host.submit { [self] in
                    await runConnection(connection)
                    session.end(error: nil)
                    forget(session)
                }
                guard hosted else {
                    session.end(error: nil)
                    forget(session)
                    return PlainHTTPResponse(status: .serviceUnavailable, text: "Long polling is not running")
                }
            }
        case .longPolling:
            break
        }
        var fields = HTTPFields()
        fields[.cacheControl] = "no-cache, no-store"
        if let pragma = HTTPField.Name("Pragma") { fields[pragma] = "no-cache" }
        if let expires = HTTPField.Name("Expires") { fields[expires] = "Thu, 01 Jan 1970 00:00:00 GMT" }
        switch await session.poll(timeout: configuration.longPollingTimeout) {
        case .data(let bytes):
            fields[.contentType] = "application/octet-stream"
            return PlainHTTPResponse(
                response: HTTPResponse(status: .ok, headerFields: fields), body: Array(bytes.readableBytesView))
        case .empty:
            return PlainHTTPResponse(response: HTTPResponse(status: .ok, headerFields: fields))
        case .noContent:
            return PlainHTTPResponse(response: HTTPResponse(status: .noContent, headerFields: fields))
        }
    }
}
