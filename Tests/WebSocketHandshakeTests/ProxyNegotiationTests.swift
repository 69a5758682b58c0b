import HTTPTypes
import Testing
import WebSocketHandshake

/// Feeds `input` to `receive` in chunks of `chunk` bytes, sending nothing: the step that ends the feed and
/// the bytes consumed in total.
private func feed(
    _ input: [UInt8],
    chunk: Int,
    _ receive: (ArraySlice<UInt8>) throws(ProxyError) -> ProxyNegotiationStep
) throws(ProxyError) -> (ProxyNegotiationStep, Int) {
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        let step = try receive(input[offset..<end])
        switch step {
        case .needMoreBytes: offset = end
        case .send(_, let consumed): return (step, offset + consumed)
        case .established(let consumed): return (step, offset + consumed)
        }
    }
    return (.needMoreBytes, offset)
}

@Suite("HTTP CONNECT negotiation (RFC 9110 §9.3.6)")
struct HTTPConnectNegotiationTests {
    @Test("the request is CONNECT in authority form with Host, IPv6 in brackets")
    func request() throws {
        let plain = try HTTPConnectNegotiation(host: "example.com", port: 443, credentials: nil)
        #expect(
            String(decoding: plain.request, as: UTF8.self)
                == "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        )
        let v6 = try HTTPConnectNegotiation(host: "::1", port: 8080, credentials: nil)
        #expect(
            String(decoding: v6.request, as: UTF8.self).hasPrefix("CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n")
        )
    }

    @Test("Proxy-Authorization: Basic is base64 of user:password (RFC 7617 §2)")
    func basic() throws {
        // RFC 7617 §2's example: Aladdin / open sesame.
        let negotiation = try HTTPConnectNegotiation(
            host: "h",
            port: 80,
            credentials: .init(username: "Aladdin", password: "open sesame")
        )
        #expect(
            String(decoding: negotiation.request, as: UTF8.self)
                .contains("\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n")
        )
        #expect(throws: ProxyError.invalidCredentials) {
            _ = try HTTPConnectNegotiation(host: "h", port: 80, credentials: .init(username: "a:b", password: "c"))
        }
    }

    @Test("a target with a space or CRLF, or a bad port, is refused")
    func badTarget() {
        for (host, port) in [("a b", 80), ("a\r\nX: y", 80), ("", 80), ("h", 0), ("h", 65536)] {
            #expect(throws: ProxyError.invalidTarget) {
                _ = try HTTPConnectNegotiation(host: host, port: port, credentials: nil)
            }
        }
    }

    @Test("a 2xx answer opens the tunnel in any split; the bytes after it are left", arguments: [1, 2, 7, 1000])
    func established(chunk: Int) throws {
        let answer = Array("HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nTAIL".utf8)
        var negotiation = try HTTPConnectNegotiation(host: "h", port: 80, credentials: nil)
        let (step, consumed) = try feed(answer, chunk: chunk) { bytes throws(ProxyError) in
            try negotiation.receive(bytes)
        }
        guard case .established = step else {
            Issue.record("not established: \(step)")
            return
        }
        #expect(Array(answer[consumed...]) == Array("TAIL".utf8))
    }

    @Test("interim 1xx answers are skipped")
    func interim() throws {
        let answer = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 OK\r\n\r\n".utf8)
        var negotiation = try HTTPConnectNegotiation(host: "h", port: 80, credentials: nil)
        #expect(try negotiation.receive(answer) == .established(consumed: answer.count))
    }

    @Test("a non-2xx answer is .rejected with its status", arguments: [403, 407, 502])
    func rejected(status: Int) throws {
        var negotiation = try HTTPConnectNegotiation(host: "h", port: 80, credentials: nil)
        do {
            _ = try negotiation.receive(Array("HTTP/1.1 \(status) No\r\nContent-Length: 0\r\n\r\n".utf8))
            Issue.record("accepted \(status)")
        } catch {
            #expect(error == .rejected)
            #expect(error.status == status)
            #expect(error.response?.status.code == status)
        }
    }

    @Test("a malformed or over-long answer fails")
    func malformed() throws {
        var negotiation = try HTTPConnectNegotiation(host: "h", port: 80, credentials: nil)
        #expect(throws: ProxyError.malformedReply) { try negotiation.receive(Array("SSH-2.0-x\r\n".utf8)) }
        var small = try HTTPConnectNegotiation(
            host: "h",
            port: 80,
            credentials: nil,
            limits: .init(maxHeadLength: 64)
        )
        let long = Array("HTTP/1.1 200 OK\r\nX: \(String(repeating: "a", count: 100))\r\n\r\n".utf8)
        #expect(throws: ProxyError.replyTooLong) { try small.receive(long) }
    }
}

@Suite("SOCKS5 negotiation (RFC 1928, RFC 1929)")
struct SOCKS5NegotiationTests {
    @Test("without credentials: greeting 05 01 00, then a domain-name request (remote DNS)")
    func noAuth() throws {
        var negotiation = try SOCKS5Negotiation(host: "example.com", port: 443, credentials: nil)
        #expect(negotiation.greeting == [5, 1, 0])
        let request: [UInt8] = [5, 1, 0, 3, 11] + Array("example.com".utf8) + [1, 0xBB]
        #expect(try negotiation.receive([5, 0]) == .send(request, consumed: 2))
        // Reply with an IPv4 bound address, split byte by byte, then target bytes.
        let reply: [UInt8] = [5, 0, 0, 1, 10, 0, 0, 1, 0x1F, 0x90] + [0xAA]
        let (step, consumed) = try feed(reply, chunk: 1) { bytes throws(ProxyError) in try negotiation.receive(bytes) }
        #expect(step == .established(consumed: 1))
        #expect(consumed == 10)
    }

    @Test("with credentials: methods 00 and 02, then 01 ulen user plen password")
    func userPassword() throws {
        var negotiation = try SOCKS5Negotiation(
            host: "127.0.0.1",
            port: 80,
            credentials: .init(username: "bob", password: "pw")
        )
        #expect(negotiation.greeting == [5, 2, 0, 2])
        #expect(
            try negotiation.receive([5, 2]) == .send([1, 3] + Array("bob".utf8) + [2] + Array("pw".utf8), consumed: 2)
        )
        #expect(try negotiation.receive([1, 0]) == .send([5, 1, 0, 1, 127, 0, 0, 1, 0, 80], consumed: 2))
        // A reply with a domain-name bound address (length-prefixed), in one read.
        let reply: [UInt8] = [5, 0, 0, 3, 3] + Array("abc".utf8) + [0, 80]
        #expect(try negotiation.receive(reply) == .established(consumed: reply.count))
    }

    @Test("an IPv6 target goes as ATYP 04 with 16 bytes")
    func ipv6() throws {
        var negotiation = try SOCKS5Negotiation(host: "2001:db8::1", port: 1, credentials: nil)
        guard case .send(let request, _) = try negotiation.receive([5, 0]) else {
            Issue.record("no request")
            return
        }
        #expect(request == [5, 1, 0, 4, 0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [1, 0, 1])
    }

    @Test("refusals: no acceptable method, wrong password, a reply code other than 0")
    func refusals() throws {
        var noMethod = try SOCKS5Negotiation(host: "h", port: 80, credentials: nil)
        #expect(throws: ProxyError.noAcceptableMethod) { try noMethod.receive([5, 0xFF]) }

        var badPassword = try SOCKS5Negotiation(host: "h", port: 80, credentials: .init(username: "u", password: "p"))
        _ = try badPassword.receive([5, 2])
        #expect(throws: ProxyError.authenticationFailed) { try badPassword.receive([1, 1]) }

        var refused = try SOCKS5Negotiation(host: "h", port: 80, credentials: nil)
        _ = try refused.receive([5, 0])
        do {
            _ = try refused.receive([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            Issue.record("accepted a refusal")
        } catch {
            #expect(error == .rejected)
            #expect(error.socksReply == 5)
        }
    }

    @Test("protocol violations: version, an unoffered method, an unknown address type")
    func malformed() throws {
        var version = try SOCKS5Negotiation(host: "h", port: 80, credentials: nil)
        #expect(throws: ProxyError.malformedReply) { try version.receive([4, 0]) }
        var unoffered = try SOCKS5Negotiation(host: "h", port: 80, credentials: nil)
        #expect(throws: ProxyError.malformedReply) { try unoffered.receive([5, 2]) }
        var addressType = try SOCKS5Negotiation(host: "h", port: 80, credentials: nil)
        _ = try addressType.receive([5, 0])
        #expect(throws: ProxyError.malformedReply) { try addressType.receive([5, 0, 0, 9, 0]) }
    }

    @Test("limits: a name over 255 bytes, empty or over-long credentials")
    func limits() {
        #expect(throws: ProxyError.invalidTarget) {
            _ = try SOCKS5Negotiation(host: String(repeating: "a", count: 256), port: 80, credentials: nil)
        }
        #expect(throws: ProxyError.invalidCredentials) {
            _ = try SOCKS5Negotiation(host: "h", port: 80, credentials: .init(username: "", password: "p"))
        }
        #expect(throws: ProxyError.invalidCredentials) {
            _ = try SOCKS5Negotiation(
                host: "h",
                port: 80,
                credentials: .init(username: "u", password: String(repeating: "p", count: 256))
            )
        }
    }
}

@Suite("Proxy URLs and the proxy environment variables (as curl reads them)")
struct ProxyEnvironmentTests {
    @Test("proxy URLs: schemes, default port 1080, credentials percent-decoded, IPv6")
    func urls() throws {
        let http = try ProxyURL("http://user:p%40ss@proxy.example:3128/")
        #expect(http.kind == .httpConnect)
        #expect(http.host == "proxy.example")
        #expect(http.port == 3128)
        #expect(http.credentials == ProxyCredentials(username: "user", password: "p@ss"))
        let bare = try ProxyURL("proxy.example")
        #expect(bare.kind == .httpConnect)
        #expect(bare.port == 1080)
        #expect(try ProxyURL("socks5h://[::1]:1081").kind == .socks5)
        #expect(try ProxyURL("SOCKS5://[::1]:1081").host == "::1")
        #expect(throws: ProxyError.unsupportedProxyScheme) { _ = try ProxyURL("https://proxy:443") }
        #expect(throws: ProxyError.unsupportedProxyScheme) { _ = try ProxyURL("socks4://proxy") }
        #expect(throws: ProxyError.invalidProxyURL) { _ = try ProxyURL("http://proxy:99999") }
        #expect(throws: ProxyError.invalidProxyURL) { _ = try ProxyURL("http://proxy/path") }
        #expect(throws: ProxyError.invalidProxyURL) { _ = try ProxyURL("http://:80") }
    }

    @Test("an invalid proxy URL's error never shows its password")
    func errorsHideCredentials() {
        for text in [
            "http://user:s3cret@proxy:99999", "http://user:s3cret@proxy/path", "http://user:s3cret@[::1",
            "http://user:s3cret@", "user:s3cret@proxy x", "http://user:s3/cret@proxy", "socks5://u:s3cret@[::1]x",
        ] {
            do {
                _ = try ProxyURL(text)
                Issue.record("parsed \(text)")
            } catch {
                #expect(error == .invalidProxyURL, "\(text)")
                #expect(!"\(error)".contains("s3"), "\(error)")
            }
        }
        do {
            _ = try ProxyURL("http://user:s3cret@")
        } catch {
            #expect("\(error)".contains("'http://***@'"), "\(error)")
        }
    }

    @Test("ws uses http_proxy, wss uses https_proxy, both fall back to all_proxy; lower case wins")
    func selection() throws {
        let ws = try WebSocketURL("ws://example.com/")
        let wss = try WebSocketURL("wss://example.com/")
        let environment = ProxyEnvironment(environment: [
            "http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2", "HTTPS_PROXY": "http://secure:3",
        ])
        #expect(try environment.proxy(for: ws)?.host == "lower")
        #expect(try environment.proxy(for: wss)?.host == "secure")
        let upperOnly = ProxyEnvironment(environment: ["HTTP_PROXY": "upper:2"])
        #expect(try upperOnly.proxy(for: ws)?.host == "upper")
        #expect(try upperOnly.proxy(for: wss) == nil)
        let all = ProxyEnvironment(environment: ["ALL_PROXY": "socks5h://s:9", "https_proxy": ""])
        #expect(try all.proxy(for: wss) == ProxyURL(kind: .socks5, host: "s", port: 9))
        #expect(try ProxyEnvironment(environment: [:]).proxy(for: ws) == nil)
        #expect(throws: ProxyError.unsupportedProxyScheme) {
            _ = try ProxyEnvironment(environment: ["http_proxy": "ftp://x"]).proxy(for: ws)
        }
    }

    @Test("no_proxy: '*', domain suffixes with or without a leading dot, exact addresses, case-insensitive")
    func noProxy() throws {
        let environment = ProxyEnvironment(environment: [
            "all_proxy": "http://p:1", "NO_PROXY": " example.com, .internal ,10.0.0.1,[::1], LOCALHOST",
        ])
        let bypassed = ["example.com", "ws.Example.COM", "a.b.internal", "internal", "10.0.0.1", "::1", "localhost"]
        for host in bypassed {
            #expect(environment.bypassesProxy(host: host), "\(host)")
        }
        for host in ["badexample.com", "example.com.evil", "10.0.0.10", "internal.com", "::2"] {
            #expect(!environment.bypassesProxy(host: host), "\(host)")
        }
        #expect(try environment.proxy(for: WebSocketURL("ws://ws.example.com")) == nil)
        #expect(try environment.proxy(for: WebSocketURL("ws://other.org")) != nil)
        let everything = ProxyEnvironment(environment: ["http_proxy": "p:1", "no_proxy": "*"])
        #expect(everything.bypassesProxy(host: "anything.example"))
        // no_proxy's lower-case name wins over the upper-case one.
        let both = ProxyEnvironment(environment: ["no_proxy": "a.example", "NO_PROXY": "*"])
        #expect(!both.bypassesProxy(host: "b.example"))
    }

    @Test("no_proxy: an IP address matches only itself, never as a suffix of another address")
    func noProxyAddressesAreExact() throws {
        let environment = ProxyEnvironment(environment: ["no_proxy": "0.0.1, 1, 2.3.4,::1"])
        for host in ["127.0.0.1", "10.0.0.1", "1.2.3.4", "fe80::1"] {
            #expect(!environment.bypassesProxy(host: host), "\(host)")
        }
        // Names still match by suffix; a dotted-decimal-looking name with a sign is not an address.
        let names = ProxyEnvironment(environment: ["no_proxy": "4"])
        #expect(names.bypassesProxy(host: "+1.+2.+3.4"))
        #expect(!names.bypassesProxy(host: "1.2.3.4"))
        #expect(try WebSocketURL("ws://1.2.3.4/").isIPv4Literal)
        #expect(try !WebSocketURL("ws://1.2.3/").isIPv4Literal)
        #expect(try !WebSocketURL("ws://256.1.1.1/").isIPv4Literal)
    }
}
