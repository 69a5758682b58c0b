import HTTPTypes

/// The client side of the opening handshake (RFC 6455 §4.1): the request to send, and the validation of the
/// server's answer.
///
/// ```swift
/// let handshake = ClientHandshake(url: try WebSocketURL("wss://example.com/chat"), subprotocols: ["chat"])
/// // send handshake.request, read the response head with HTTPResponseHeadParser, then:
/// let negotiated = try handshake.validate(head)   // throws ClientHandshakeError
/// ```
public struct ClientHandshake: Sendable, Hashable {
    /// Where to connect.
    public var url: WebSocketURL
    /// The `Sec-WebSocket-Key` sent (base64 of 16 random bytes, RFC 6455 §4.1 item 7).
    public var key: String
    /// The subprotocols offered, most preferred first (RFC 6455 §4.1 item 10).
    public var subprotocols: [String]
    /// The extensions offered, with their parameters (RFC 6455 §4.1 item 11).
    public var extensions: [WebSocketExtension]
    /// Further request fields, e.g. `Origin`, `Authorization`, cookies.
    public var headerFields: HTTPFields

    /// Creates a handshake with an explicit key (tests, or a caller-owned random source).
    public init(
        url: WebSocketURL,
        key: String,
        subprotocols: [String] = [],
        extensions: [WebSocketExtension] = [],
        headerFields: HTTPFields = [:]
    ) {
        self.url = url
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.headerFields = headerFields
    }

    /// Creates a handshake whose key is 16 bytes drawn from `generator` (inject a seeded one in tests).
    public init(
        url: WebSocketURL,
        subprotocols: [String] = [],
        extensions: [WebSocketExtension] = [],
        headerFields: HTTPFields = [:],
        using generator: inout some RandomNumberGenerator
    ) {
        self.init(
            url: url,
            key: OpeningHandshake.makeKey(using: &generator),
            subprotocols: subprotocols,
            extensions: extensions,
            headerFields: headerFields
        )
    }

    /// Creates a handshake whose key comes from the system's secure random source.
    public init(
        url: WebSocketURL,
        subprotocols: [String] = [],
        extensions: [WebSocketExtension] = [],
        headerFields: HTTPFields = [:]
    ) {
        var generator = SystemRandomNumberGenerator()
        self.init(
            url: url,
            subprotocols: subprotocols,
            extensions: extensions,
            headerFields: headerFields,
            using: &generator
        )
    }

    /// The `Sec-WebSocket-Accept` value the server must answer with.
    public var expectedAccept: String { OpeningHandshake.acceptValue(forKey: key) }

    /// The opening request (RFC 6455 §4.1): `GET` of the URL's request-target with the URL's authority as
    /// `Host` (in `authority`), `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version: 13`, the offered subprotocols and extensions, then ``headerFields``.
    ///
    /// `scheme` is `http`/`https`, so converting to an HTTP/1.1 head in origin form gives the request line
    /// `GET /path?query HTTP/1.1` and `Host: authority`.
    public var request: HTTPRequest {
        var fields = HTTPFields()
        fields[.upgrade] = "websocket"
        fields[.connection] = "Upgrade"
        fields[.secWebSocketKey] = key
        fields[.secWebSocketVersion] = OpeningHandshake.supportedVersion
        if !subprotocols.isEmpty {
            fields[.secWebSocketProtocol] = subprotocols.joined(separator: ", ")
        }
        if !extensions.isEmpty {
            fields[.secWebSocketExtensions] = WebSocketExtension.serialize(extensions)
        }
        fields.append(contentsOf: headerFields)
        return HTTPRequest(
            method: .get,
            scheme: url.isSecure ? "https" : "http",
            authority: url.authority,
            path: url.requestTarget,
            headerFields: fields
        )
    }

    /// Validates the server's answer as read by ``HTTPResponseHeadParser``; see
    /// ``validate(_:httpVersion:)`` for the rules.
    public func validate(_ head: HTTPResponseHead) throws(ClientHandshakeError) -> NegotiatedHandshake {
        try validate(head.response, httpVersion: head.version)
    }

    /// Validates the server's answer (RFC 6455 §4.1, "the client MUST validate the server's response"):
    ///
    /// 1. status 101 (item 1);
    /// 2. the status line is HTTP/1.1 or higher: `Upgrade` and 101 do not exist in HTTP/1.0 (RFC 9110 §7.8,
    ///    RFC 6455 §4.2.2 item 5.1);
    /// 3. `Upgrade` is `websocket`, ASCII case-insensitively, and nothing else (item 2: a value "that is not an
    ///    ASCII case-insensitive match for the value websocket" fails, so `websocket, h2c` does);
    /// 4. `Connection` lists `upgrade`, case-insensitively (item 3);
    /// 5. `Sec-WebSocket-Accept` is present once and equals ``expectedAccept`` exactly (item 4);
    /// 6. `Sec-WebSocket-Extensions` parses (§9.1) and names only offered extensions (item 5);
    /// 7. `Sec-WebSocket-Protocol`, if present, is a single subprotocol the client offered (item 6).
    ///
    /// - Parameters:
    ///   - response: the response head.
    ///   - httpVersion: the version of its status line, which `HTTPResponse` does not carry.
    /// - Returns: what was negotiated.
    /// - Throws: ``ClientHandshakeError`` for the first rule broken; the client must then fail the WebSocket
    ///   connection.
    public func validate(
        _ response: HTTPResponse,
        httpVersion: HTTPProtocolVersion
    ) throws(ClientHandshakeError) -> NegotiatedHandshake {
        let fields = response.headerFields
        guard response.status.code == 101 else {
            throw .with(.unexpectedStatus, "expected status 101, got \(response.status.code)")
        }
        guard httpVersion >= .http1_1 else {
            throw .with(.httpVersionTooOld, "101 Switching Protocols in an \(httpVersion) response")
        }
        // `fields[.upgrade]` joins several field lines with ", ", so two lines never pass.
        guard let upgrade = fields[.upgrade],
            HTTPSyntax.asciiCaseInsensitiveEquals(HTTPSyntax.trimmed(upgrade), "websocket")
        else {
            let sent = fields[.upgrade].map { "'\($0)'" } ?? "absent"
            throw .with(.missingUpgradeWebSocket, "Upgrade header must be 'websocket' (it is \(sent))")
        }
        guard HTTPSyntax.listContainsToken(fields[values: .connection], "upgrade") else {
            let sent = fields[.connection].map { "'\($0)'" } ?? "absent"
            throw .with(.missingConnectionUpgrade, "Connection header must contain 'upgrade' (it is \(sent))")
        }
        let accepts = fields[values: .secWebSocketAccept]
        guard let accept = accepts.first else { throw .missingAccept }
        guard accepts.count == 1, HTTPSyntax.trimmed(accept) == expectedAccept else {
            throw .with(
                .acceptMismatch,
                "Sec-WebSocket-Accept is '\(accepts.joined(separator: ", "))', expected '\(expectedAccept)'"
            )
        }

        let accepted: [WebSocketExtension]
        do {
            accepted = try WebSocketExtension.parse(fields[values: .secWebSocketExtensions])
        } catch {
            throw .with(.malformedExtensions, error.description)
        }
        let offeredExtensions = Set(extensions.map(\.name))
        if let bad = accepted.first(where: { !offeredExtensions.contains($0.name) }) {
            throw .with(.extensionNotOffered, "the server accepted extension '\(bad.name)', which was not offered")
        }

        let protocols = HTTPSyntax.listElements(fields[values: .secWebSocketProtocol])
        var subprotocol: String?
        if let chosen = protocols.first {
            guard protocols.count == 1 else {
                throw .with(
                    .multipleSubprotocols,
                    "the server chose several subprotocols: \(protocols.joined(separator: ", "))"
                )
            }
            guard subprotocols.contains(String(chosen)) else {
                throw .with(.subprotocolNotOffered, "the server chose subprotocol '\(chosen)', which was not offered")
            }
            subprotocol = String(chosen)
        }
        return NegotiatedHandshake(subprotocol: subprotocol, extensions: accepted, response: response)
    }
}

/// What a successful opening handshake agreed on.
public struct NegotiatedHandshake: Sendable, Hashable {
    /// The subprotocol the server chose, or `nil`.
    public var subprotocol: String?
    /// The extensions in use, with the server's parameters, in the server's order.
    public var extensions: [WebSocketExtension]
    /// The server's 101 response.
    public var response: HTTPResponse

    public init(subprotocol: String?, extensions: [WebSocketExtension], response: HTTPResponse) {
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.response = response
    }
}

/// Why the client fails the connection after the server's handshake response (RFC 6455 §4.1, items 1–6 of
/// the response validation). Compare with the static members; ``description`` says what was wrong.
public struct ClientHandshakeError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case unexpectedStatus
        case httpVersionTooOld
        case missingUpgradeWebSocket
        case missingConnectionUpgrade
        case missingAccept
        case acceptMismatch
        case malformedExtensions
        case extensionNotOffered
        case multipleSubprotocols
        case subprotocolNotOffered
    }

    private let code: Code
    private let detail: String?

    private init(_ code: Code, _ detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    /// §4.1 response item 1: the status is not 101 (the client may handle redirects or auth itself).
    public static let unexpectedStatus = Self(.unexpectedStatus)
    /// RFC 9110 §7.8: a 101 in an HTTP/1.0 status line (upgrading needs HTTP/1.1 or higher).
    public static let httpVersionTooOld = Self(.httpVersionTooOld)
    /// §4.1 response item 2: `Upgrade` is absent or is not exactly `websocket` (ASCII case-insensitive).
    public static let missingUpgradeWebSocket = Self(.missingUpgradeWebSocket)
    /// §4.1 response item 3: `Connection` lacks `upgrade`.
    public static let missingConnectionUpgrade = Self(.missingConnectionUpgrade)
    /// §4.1 response item 4: no `Sec-WebSocket-Accept`.
    public static let missingAccept = Self(.missingAccept)
    /// §4.1 response item 4: `Sec-WebSocket-Accept` is not the expected value (or appears twice).
    public static let acceptMismatch = Self(.acceptMismatch)
    /// §9.1: `Sec-WebSocket-Extensions` is malformed.
    public static let malformedExtensions = Self(.malformedExtensions)
    /// §4.1 response item 5: an extension the client did not offer.
    public static let extensionNotOffered = Self(.extensionNotOffered)
    /// §4.1 response item 6 / §4.2.2: more than one subprotocol.
    public static let multipleSubprotocols = Self(.multipleSubprotocols)
    /// §4.1 response item 6: a subprotocol the client did not offer.
    public static let subprotocolNotOffered = Self(.subprotocolNotOffered)

    static func with(_ kind: Self, _ detail: String) -> Self { Self(kind.code, detail) }

    /// Compares the rule only, not the detail text.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        let what: String
        switch code {
        case .unexpectedStatus: what = "the server did not answer 101 Switching Protocols"
        case .httpVersionTooOld: what = "the 101 response is not HTTP/1.1 or higher"
        case .missingUpgradeWebSocket: what = "the response's Upgrade header is not 'websocket'"
        case .missingConnectionUpgrade: what = "the response's Connection header lacks 'upgrade'"
        case .missingAccept: what = "the response has no Sec-WebSocket-Accept"
        case .acceptMismatch: what = "the response's Sec-WebSocket-Accept is wrong"
        case .malformedExtensions: what = "the response's Sec-WebSocket-Extensions is malformed"
        case .extensionNotOffered: what = "the server accepted an extension the client did not offer"
        case .multipleSubprotocols: what = "the server chose more than one subprotocol"
        case .subprotocolNotOffered: what = "the server chose a subprotocol the client did not offer"
        }
        return "WebSocket handshake failed (RFC 6455 §4.1): \(what)" + (detail.map { ": \($0)" } ?? "")
    }
}
