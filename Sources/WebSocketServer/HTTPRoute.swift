import HTTPTypes

/// A path on which the server answers plain HTTP requests (no upgrade, no event stream) with a complete response,
/// after reading the request body up to a bound: an API endpoint such as a SignalR `POST {hub}/negotiate`.
///
/// ```swift
/// HTTPRoute(path: "/hello", methods: [.post]) { request in
///     PlainHTTPResponse(status: .ok, text: "got \(request.body.count) bytes\n")
/// }
/// ```
///
/// Matching is on the exact path without the query. A method not in ``methods`` is answered 405 Method Not
/// Allowed with an `Allow` field (RFC 9110 §15.5.6); a body longer than ``maxBodyLength`` 413 Content Too Large
/// (RFC 9110 §15.5.14), without calling the handler. When a ``WebSocketRoute`` has the same path, WebSocket
/// upgrade requests (extended CONNECT over HTTP/2) go to it and the other requests here. Served over HTTP/1.1
/// and, when ``Server/Configuration/http2`` is set, HTTP/2.
public struct HTTPRoute: Sendable {
    /// The exact request path (without query), e.g. `/chat/negotiate`.
    public var path: String
    /// The methods answered; others get 405. `HEAD` is answered like `GET` (without the body) when `GET` is in.
    public var methods: Set<HTTPRequest.Method>
    /// The longest request body read, in bytes; a longer one is answered 413. Default 64 KiB (65 536).
    public var maxBodyLength: Int
    /// Produces the answer. Runs as a task of the server, cancelled when the client goes away; the server adds
    /// `Content-Length` and `Connection: close`. The server's handshake timeout covers reading the request, not
    /// the handler, which may wait (e.g. a long poll).
    public var handler: @Sendable (HTTPRouteRequest) async -> PlainHTTPResponse

    public init(
        path: String,
        methods: Set<HTTPRequest.Method>,
        maxBodyLength: Int = 64 * 1024,
        handler: @escaping @Sendable (HTTPRouteRequest) async -> PlainHTTPResponse
    ) {
        self.path = path
        self.methods = methods
        self.maxBodyLength = maxBodyLength
        self.handler = handler
    }

    /// Whether `method` is answered (HEAD counts as GET).
    func allows(_ method: HTTPRequest.Method) -> Bool {
        methods.contains(method) || (method == .head && methods.contains(.get))
    }

    /// The `Allow` field value: the methods, sorted.
    var allowHeader: String { methods.map(\.rawValue).sorted().joined(separator: ", ") }
}

/// A complete plain HTTP request, as an ``HTTPRoute`` handler receives it.
public struct HTTPRouteRequest: Sendable {
    /// The request head.
    public var request: HTTPRequest
    /// The path without the query.
    public var path: String
    /// The query (after `?`), percent-encoded, or nil.
    public var query: String?
    /// The whole body (at most the route's ``HTTPRoute/maxBodyLength`` bytes).
    public var body: [UInt8]
    /// The addresses and TLS state of the connection.
    public var connection: ConnectionInfo

    public init(request: HTTPRequest, path: String, query: String?, body: [UInt8], connection: ConnectionInfo) {
        self.request = request
        self.path = path
        self.query = query
        self.body = body
        self.connection = connection
    }

    /// The decoded value of the first query parameter called `name` (`+` is a space, `%XX` escapes decoded); nil
    /// when absent, `""` when present without `=`.
    public func queryValue(_ name: String) -> String? {
        HTTPQuery.value(name, in: query)
    }

    /// The bearer token: from `Authorization: Bearer <token>`, else from the `access_token` query parameter.
    public var bearerToken: String? {
        HTTPQuery.bearerToken(authorization: request.headerFields[.authorization], query: query)
    }
}

/// Query-string and bearer-token helpers shared by the request types of the routes.
package enum HTTPQuery {
    /// The decoded value of the first parameter called `name` in a percent-encoded query; `""` when it has no `=`.
    package static func value(_ name: String, in query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if EventStreamRequest.formDecode(parts[0]) == name {
                return parts.count > 1 ? EventStreamRequest.formDecode(parts[1]) : ""
            }
        }
        return nil
    }

    /// `Authorization: Bearer <token>` (scheme in any case), else the `access_token` query parameter.
    package static func bearerToken(authorization: String?, query: String?) -> String? {
        if let authorization {
            let prefix = "bearer "
            if authorization.count > prefix.count, authorization.lowercased().hasPrefix(prefix) {
                let token = authorization.dropFirst(prefix.count).drop(while: { $0 == " " })
                if !token.isEmpty { return String(token) }
            }
        }
        return value("access_token", in: query).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Splits a request target into its path and query.
    package static func split(_ target: String) -> (path: String, query: String?) {
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }
}
