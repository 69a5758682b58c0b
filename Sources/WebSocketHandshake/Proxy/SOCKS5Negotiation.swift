/// The client side of a SOCKS5 `CONNECT` (RFC 1928) with optional username/password authentication
/// (RFC 1929), sans-I/O: send ``greeting``, then feed the proxy's bytes in any split and send what
/// ``receive(_:)`` asks for.
///
/// ```swift
/// var negotiation = try SOCKS5Negotiation(host: "example.com", port: 443, credentials: nil)
/// // write negotiation.greeting, then for each chunk read (loop while it asks to send):
/// switch try negotiation.receive(chunk) {            // throws ProxyError
/// case .needMoreBytes: break
/// case .send(let bytes, let consumed): break        // write bytes; feed chunk[consumed...] again
/// case .established(let consumed): break            // chunk[consumed...] is the target's data
/// }
/// ```
///
/// The steps:
/// 1. greeting `05 n methods…` (§3): method `00` (no authentication), plus `02` (username/password) when
///    credentials are given; the proxy picks one (`05 m`), or `FF` for none (``ProxyError/noAcceptableMethod``);
/// 2. with `02`: `01 ulen user plen password` (RFC 1929 §2), answered `01 status`; a status other than 0 is
///    ``ProxyError/authenticationFailed`` (the version byte of that answer is not checked: some proxies send 5);
/// 3. the request `05 01 00 atyp addr port` (§4): a host name goes as a domain name (`atyp 03`), so the proxy
///    resolves it (remote DNS); IPv4 and IPv6 literals go as addresses (`01`, `04`);
/// 4. the reply `05 rep 00 atyp bnd.addr bnd.port` (§6): `rep` 0 opens the tunnel, any other is
///    ``ProxyError/rejected`` with ``ProxyError/socksReply``.
///
/// Memory: one message is buffered at a time, at most 262 bytes (a reply with a 255-byte domain name).
public struct SOCKS5Negotiation: Sendable {
    private enum State: Sendable {
        case methodSelection
        case authentication
        case reply
        case established
    }

    /// The bytes to send to the proxy first: the method-selection message (RFC 1928 §3).
    public let greeting: [UInt8]
    private let request: [UInt8]
    private let authentication: [UInt8]?
    private var state = State.methodSelection
    private var message: [UInt8] = []

    /// Creates the negotiation for a connection to `host:port` through the proxy.
    ///
    /// - Parameters:
    ///   - host: the target: a name (sent to the proxy, which resolves it), an IPv4 address, or an IPv6 address
    ///     without brackets.
    ///   - port: the target port, 1...65535.
    ///   - credentials: offered with the username/password method (RFC 1929) when not nil.
    /// - Throws: ``ProxyError/invalidTarget`` (also for a name longer than 255 bytes),
    ///   ``ProxyError/invalidCredentials`` (a username or password empty or longer than 255 bytes).
    public init(host: String, port: Int, credentials: ProxyCredentials?) throws(ProxyError) {
        try validateProxyTarget(host: host, port: port)
        var request: [UInt8] = [5, 1, 0]
        if let address = Self.ipv4(host) {
            request += [1] + address
        } else if host.contains(":") {
            guard let address = Self.ipv6(host) else {
                throw .with(.invalidTarget, "'\(host)' is not an IPv6 address")
            }
            request += [4] + address
        } else {
            let name = Array(host.utf8)
            guard name.count <= 255 else { throw .with(.invalidTarget, "a SOCKS5 domain name has at most 255 bytes") }
            request += [3, UInt8(name.count)] + name
        }
        request += [UInt8(port >> 8), UInt8(port & 0xFF)]
        self.request = request
        if let credentials {
            let user = Array(credentials.username.utf8)
            let password = Array(credentials.password.utf8)
            guard (1...255).contains(user.count), (1...255).contains(password.count) else {
                throw .with(.invalidCredentials, "RFC 1929: username and password have 1 to 255 bytes")
            }
            self.authentication = [1, UInt8(user.count)] + user + [UInt8(password.count)] + password
            self.greeting = [5, 2, 0, 2]
        } else {
            self.authentication = nil
            self.greeting = [5, 1, 0]
        }
    }

    /// Consumes the proxy's bytes.
    ///
    /// - Parameter bytes: the next bytes from the proxy, in any split.
    /// - Returns: what to do next (see ``ProxyNegotiationStep``). Once established, `.established(consumed: 0)`.
    /// - Throws: ``ProxyError/malformedReply``, ``ProxyError/noAcceptableMethod``,
    ///   ``ProxyError/authenticationFailed``, ``ProxyError/rejected``.
    public mutating func receive(_ bytes: some Collection<UInt8>) throws(ProxyError) -> ProxyNegotiationStep {
        var consumed = 0
        for byte in bytes {
            if case .established = state { break }
            consumed += 1
            message.append(byte)
            if let step = try step() {
                message.removeAll(keepingCapacity: true)
                switch step {
                case .send(let output, _): return .send(output, consumed: consumed)
                case .established: return .established(consumed: consumed)
                case .needMoreBytes: break
                }
            }
        }
        if case .established = state { return .established(consumed: 0) }
        return .needMoreBytes
    }

    /// Looks at ``message``: nil while it is incomplete, else what it leads to.
    private mutating func step() throws(ProxyError) -> ProxyNegotiationStep? {
        switch state {
        case .methodSelection:
            guard message.count == 2 else { return nil }
            guard message[0] == 5 else { throw .with(.malformedReply, "SOCKS version \(message[0]), expected 5") }
            switch message[1] {
            case 0:
                state = .reply
                return .send(request, consumed: 0)
            case 2 where authentication != nil:
                state = .authentication
                return .send(authentication ?? [], consumed: 0)
            case 0xFF:
                throw .with(
                    .noAcceptableMethod,
                    authentication == nil ? "the proxy may need a username and password" : "X'FF'"
                )
            default:
                throw .with(.malformedReply, "the proxy chose method \(message[1]), which was not offered")
            }
        case .authentication:
            guard message.count == 2 else { return nil }
            guard message[1] == 0 else { throw .with(.authenticationFailed, "status \(message[1])") }
            state = .reply
            return .send(request, consumed: 0)
        case .reply:
            guard message.count >= 5 else { return nil }
            guard message[0] == 5 else { throw .with(.malformedReply, "SOCKS version \(message[0]), expected 5") }
            guard message[1] == 0 else { throw .socksRejected(message[1]) }
            let length: Int
            switch message[3] {
            case 1: length = 4 + 4 + 2
            case 3: length = 4 + 1 + Int(message[4]) + 2
            case 4: length = 4 + 16 + 2
            default: throw .with(.malformedReply, "address type \(message[3])")
            }
            guard message.count == length else { return nil }
            state = .established
            return .established(consumed: 0)
        case .established:
            return nil
        }
    }

    /// The meaning of a SOCKS5 reply code (RFC 1928 §6).
    public static func describe(reply: UInt8) -> String {
        switch reply {
        case 0: "succeeded"
        case 1: "general SOCKS server failure"
        case 2: "connection not allowed by ruleset"
        case 3: "network unreachable"
        case 4: "host unreachable"
        case 5: "connection refused"
        case 6: "TTL expired"
        case 7: "command not supported"
        case 8: "address type not supported"
        default: "unassigned"
        }
    }

    /// Four bytes for a dotted-decimal IPv4 address, else nil.
    static func ipv4(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// Sixteen bytes for an IPv6 address (RFC 4291 §2.2 text forms, with `::` and an embedded IPv4 tail).
    static func ipv6(_ host: String) -> [UInt8]? {
        let halves = host.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return nil }
        func groups(_ text: Substring) -> [UInt16]? {
            if text.isEmpty { return [] }
            var result: [UInt16] = []
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            for (index, part) in parts.enumerated() {
                if index == parts.count - 1, part.contains("."), let v4 = ipv4(String(part)) {
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                } else {
                    guard (1...4).contains(part.count), let value = UInt16(part, radix: 16) else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            all = head
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension WebSocketURL {
    /// The host as address bytes when it is an IP literal: 4 for IPv4, 16 for IPv6; nil for a name.
    public var hostAddressBytes: [UInt8]? {
        isIPv6Literal ? SOCKS5Negotiation.ipv6(host) : SOCKS5Negotiation.ipv4(host)
    }
}
