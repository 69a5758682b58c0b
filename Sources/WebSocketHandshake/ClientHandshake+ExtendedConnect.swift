import HTTPTypes

extension ClientHandshake {
    /// The extended CONNECT request that opens this WebSocket over an HTTP/2 stream (RFC 8441 §4-§5):
    /// `:method CONNECT`, `:protocol websocket`, `:scheme` (`https` or `http`), `:path` (the URL's
    /// request-target), `:authority`, `sec-websocket-version: 13`, the offered subprotocols and extensions, then
    /// ``headerFields`` without the fields HTTP/2 forbids (RFC 9113 §8.2.2) and without `sec-websocket-key`,
    /// which HTTP/2 does not use (RFC 8441 §5).
    ///
    /// Send it only on a connection whose server sent `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3).
    public var extendedConnectRequest: HTTPRequest {
        var fields = HTTPFields()
        fields[.secWebSocketVersion] = OpeningHandshake.supportedVersion
        if !subprotocols.isEmpty {
            fields[.secWebSocketProtocol] = subprotocols.joined(separator: ", ")
        }
        if !extensions.isEmpty {
            fields[.secWebSocketExtensions] = WebSocketExtension.serialize(extensions)
        }
        for field in headerFields
        where !ExtendedConnect.isForbiddenInResponse(field.name) && field.name != .secWebSocketKey
            && field.name.canonicalName != "host" && field.name.canonicalName != "te"
        {
            fields.append(field)
        }
        var request = HTTPRequest(
            method: .connect,
            scheme: url.isSecure ? "https" : "http",
            authority: url.authority,
            path: url.requestTarget,
            headerFields: fields
        )
        request.extendedConnectProtocol = ExtendedConnect.webSocketProtocol
        return request
    }

    /// Validates the server's answer to ``extendedConnectRequest`` (RFC 8441 §5):
    ///
    /// 1. status 200 (any 2xx is success for CONNECT, RFC 9110 §9.3.6, but RFC 8441 §5 names 200; others fail);
    /// 2. `sec-websocket-extensions` parses (RFC 6455 §9.1) and names only offered extensions (RFC 6455 §4.1);
    /// 3. `sec-websocket-protocol`, if present, is a single subprotocol the client offered (RFC 6455 §4.1).
    ///
    /// There is no `Sec-WebSocket-Accept` to check over HTTP/2.
    ///
    /// - Returns: what was negotiated.
    /// - Throws: ``ClientHandshakeError`` for the first rule broken (`unexpectedStatus` for a non-200).
    public func validateExtendedConnect(_ response: HTTPResponse) throws(ClientHandshakeError) -> NegotiatedHandshake {
        let fields = response.headerFields
        guard response.status.code == 200 else {
            throw .with(.unexpectedStatus, "expected status 200 to an extended CONNECT, got \(response.status.code)")
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
