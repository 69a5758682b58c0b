import HTTPTypes

/// The client side of an HTTP `CONNECT` tunnel (RFC 9110 §9.3.6), sans-I/O: the request to send first, then
/// the proxy's answer, fed in any split.
///
/// ```swift
/// var negotiation = try HTTPConnectNegotiation(host: "example.com", port: 443, credentials: nil)
/// // write negotiation.request, then for each chunk read:
/// switch try negotiation.receive(chunk) {      // throws ProxyError (.rejected carries the status)
/// case .needMoreBytes: break
/// case .established(let consumed): break      // chunk[consumed...] is the target's (TLS or HTTP) data
/// case .send: break                           // never for CONNECT
/// }
/// ```
///
/// The request is `CONNECT host:port HTTP/1.1` in authority form (RFC 9112 §3.2.3; IPv6 literals in brackets)
/// with the same `Host`, and `Proxy-Authorization: Basic …` (RFC 9110 §11.7.2, RFC 7617) when credentials are
/// given. Any 2xx answer opens the tunnel (RFC 9110 §9.3.6: "Any 2xx (Successful) response indicates that the
/// sender (and all inbound proxies) will switch to tunnel mode"); interim 1xx answers are skipped (at most 8);
/// any other status fails with ``ProxyError/rejected`` carrying the status and the response head.
///
/// Memory: the answer is read by ``HTTPResponseHeadParser`` with its limits (default 16 KiB per head); the
/// bytes after the 2xx head are never consumed.
public struct HTTPConnectNegotiation: Sendable {
    /// The most interim (1xx) responses skipped before the proxy counts as misbehaving.
    public static let maxInterimResponses = 8

    /// The bytes to send to the proxy first: the `CONNECT` request head.
    public let request: [UInt8]
    private let limits: HTTPResponseHeadParser.Limits
    private var parser: HTTPResponseHeadParser
    private var interimResponses = 0
    private var isEstablished = false

    /// Creates the negotiation for a tunnel to `host:port`.
    ///
    /// - Parameters:
    ///   - host: the target host (a name, an IPv4 address, or an IPv6 address without brackets).
    ///   - port: the target port, 1...65535.
    ///   - credentials: sent as `Proxy-Authorization: Basic` when not nil.
    ///   - headerFields: further request fields for the proxy (e.g. `User-Agent`).
    ///   - limits: bounds for the proxy's response head (default: 16 KiB, 100 field lines).
    /// - Throws: ``ProxyError/invalidTarget``, ``ProxyError/invalidCredentials``.
    public init(
        host: String,
        port: Int,
        credentials: ProxyCredentials?,
        headerFields: HTTPFields = [:],
        limits: HTTPResponseHeadParser.Limits = .init()
    ) throws(ProxyError) {
        try validateProxyTarget(host: host, port: port)
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var head = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n"
        if let credentials {
            head += "Proxy-Authorization: \(try credentials.basicAuthorization())\r\n"
        }
        for field in headerFields {
            head += "\(field.name.rawName): \(field.value)\r\n"
        }
        head += "\r\n"
        self.request = Array(head.utf8)
        self.limits = limits
        self.parser = HTTPResponseHeadParser(limits: limits)
    }

    /// Consumes the proxy's answer.
    ///
    /// - Parameter bytes: the next bytes from the proxy, in any split.
    /// - Returns: ``ProxyNegotiationStep/needMoreBytes`` or ``ProxyNegotiationStep/established(consumed:)``
    ///   (a 2xx head ended after `consumed` bytes of this input). Once established, further calls return
    ///   `.established(consumed: 0)`.
    /// - Throws: ``ProxyError/rejected`` (non-2xx; ``ProxyError/status`` holds it), ``ProxyError/malformedReply``,
    ///   ``ProxyError/replyTooLong``.
    public mutating func receive(_ bytes: some Collection<UInt8>) throws(ProxyError) -> ProxyNegotiationStep {
        if isEstablished { return .established(consumed: 0) }
        var offset = 0
        var rest = bytes[...]
        while true {
            let progress: HTTPResponseHeadParser.Progress
            do {
                progress = try parser.parse(rest)
            } catch {
                throw error == .headTooLong
                    ? .with(.replyTooLong, "the response head exceeds \(limits.maxHeadLength) bytes")
                    : .with(.malformedReply, "\(error)")
            }
            guard case .complete(let head, let consumed) = progress else { return .needMoreBytes }
            offset += consumed
            rest = rest.dropFirst(consumed)
            let status = head.response.status
            switch status.kind {
            case .informational:
                interimResponses += 1
                guard interimResponses <= Self.maxInterimResponses else {
                    throw .with(.replyTooLong, "more than \(Self.maxInterimResponses) interim responses")
                }
                parser = HTTPResponseHeadParser(limits: limits)
            case .successful:
                isEstablished = true
                return .established(consumed: offset)
            default:
                throw .httpRejected(head.response)
            }
        }
    }
}
