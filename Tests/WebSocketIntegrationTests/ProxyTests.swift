import NIOCore
import NIOSSL
import Testing
import WebSocketClient
import WebSocketHandshake
import WebSocketNIOTestSupport
import WebSocketTestSupport

/// ws:// and wss:// through real proxies started here from Debian packages: tinyproxy (HTTP CONNECT, with
/// and without Basic auth) and microsocks (SOCKS5, with and without a password); refusals (407, 403, SOCKS5
/// authentication) and proxies that close the connection (scripted peers).
@Suite("Client through proxies", .serialized, .timeLimit(.minutes(2)))
struct ProxyTests {
    enum ProxyKind: String, CaseIterable, Sendable {
        case tinyproxy, tinyproxyBasicAuth, microsocks, microsocksPassword
    }

    static let installed =
        ChildProcess.isInstalled(ChildProcess.tinyproxy) && ChildProcess.isInstalled(ChildProcess.microsocks)

    static func start(_ kind: ProxyKind) async throws -> (ChildProcess, ProxyURL) {
        switch kind {
        case .tinyproxy:
            let proxy = try await ChildProcess.tinyproxy()
            return (proxy, try ProxyURL("http://127.0.0.1:\(proxy.port)"))
        case .tinyproxyBasicAuth:
            let proxy = try await ChildProcess.tinyproxy(basicAuth: ("alice", "s3cret"))
            return (proxy, try ProxyURL("http://alice:s3cret@127.0.0.1:\(proxy.port)"))
        case .microsocks:
            let proxy = try await ChildProcess.microsocks()
            return (proxy, try ProxyURL("socks5://127.0.0.1:\(proxy.port)"))
        case .microsocksPassword:
            let proxy = try await ChildProcess.microsocks(credentials: ("bob", "pa55"))
            return (proxy, try ProxyURL("socks5h://bob:pa55@127.0.0.1:\(proxy.port)"))
        }
    }

    static func echo(through proxy: ProxyURL, url: String, configuration: WebSocketClientConfiguration) async throws {
        var configuration = configuration
        configuration.proxy = proxy
        try await WebSocket.withConnection(to: url, configuration: configuration) { ws in
            var iterator = ws.messages.makeAsyncIterator()
            try await ws.send(text: "through the proxy")
            #expect(await iterator.next()?.text == "through the proxy")
            let big = testPayload(300_000)
            try await ws.send(binary: big)
            #expect(await iterator.next()?.payload == big)
        }
    }

    @Test("ws:// through each proxy", .enabled(if: installed), arguments: ProxyKind.allCases)
    func plain(kind: ProxyKind) async throws {
        let (process, proxy) = try await Self.start(kind)
        try await ChildProcess.with(process) { _ in
            try await EchoServer.with { server in
                try await Self.echo(through: proxy, url: server.url(), configuration: .init())
            }
        }
    }

    @Test(
        "wss:// through each proxy: TLS to the server inside the tunnel",
        .enabled(if: installed && TestCertificate.isAvailable),
        arguments: ProxyKind.allCases
    )
    func secure(kind: ProxyKind) async throws {
        let (process, proxy) = try await Self.start(kind)
        let certificate = try TestCertificate.make()
        try await ChildProcess.with(process) { _ in
            try await EchoServer.with(tls: try certificate.serverTLS()) { server in
                try await Self.echo(
                    through: proxy,
                    url: "wss://127.0.0.1:\(server.port)/echo",
                    configuration: try certificate.clientConfiguration()
                )
            }
        }
    }

    @Test(
        "wss:// through a tunnel checks the server's name (SNI = the URL's host), not the proxy's address",
        .enabled(if: TestCertificate.isAvailable),
        arguments: [false, true]
    )
    func nameCheckThroughTunnel(certificateHasProxyAddress: Bool) async throws {
        // One certificate names localhost only; the other also 127.0.0.1, which is the proxy's address here
        // (NIOSSL alone would accept it for any name, matching the socket's peer, i.e. the proxy).
        let serverTLS: TLSConfiguration
        let clientConfiguration: WebSocketClientConfiguration
        if certificateHasProxyAddress {
            let certificate = try TestCertificate.make()
            (serverTLS, clientConfiguration) = (try certificate.serverTLS(), try certificate.clientConfiguration())
        } else {
            let certificate = try NameOnlyCertificate.make()
            (serverTLS, clientConfiguration) = (certificate.serverTLS, certificate.clientConfiguration)
        }
        try await EchoServer.with(tls: serverTLS) { server in
            // A CONNECT proxy that tunnels every request to the echo server, whatever host it names.
            let proxy = try await TunnelProxy.start(target: server.port)
            try await Self.echo(
                through: try ProxyURL("http://127.0.0.1:\(proxy.port)"),
                url: "wss://localhost:\(server.port)/echo",
                configuration: clientConfiguration
            )
            var configuration = clientConfiguration
            configuration.proxy = try ProxyURL("http://127.0.0.1:\(proxy.port)")
            await #expect(throws: WebSocketClientError.closedDuringHandshake) {
                _ = try await WebSocket.connect(
                    to: "wss://not-localhost.example:\(server.port)/echo",
                    configuration: configuration
                )
            }
            // The IP address in the URL is checked against the certificate's addresses.
            if certificateHasProxyAddress {
                let ws = try await WebSocket.connect(
                    to: "wss://127.0.0.1:\(server.port)/echo",
                    configuration: configuration
                )
                await ws.close()
            }
            #expect(
                proxy.requestedTargets.prefix(2) == [
                    "localhost:\(server.port)", "not-localhost.example:\(server.port)",
                ]
            )
            await proxy.stop()
        }
    }

    @Test("tinyproxy: 407 without or with wrong credentials, 403 for a port it does not allow", .enabled(if: installed))
    func httpRefusals() async throws {
        try await EchoServer.with { server in
            let auth = try await ChildProcess.tinyproxy(basicAuth: ("alice", "s3cret"))
            try await ChildProcess.with(auth) { auth in
                // tinyproxy 1.11 answers wrong credentials with 401 rather than 407.
                for (proxy, statuses) in [
                    ("http://127.0.0.1:\(auth.port)", [407]),
                    ("http://alice:wrong@127.0.0.1:\(auth.port)", [401, 407]),
                ] {
                    var configuration = WebSocketClientConfiguration()
                    configuration.proxy = try ProxyURL(proxy)
                    do throws(WebSocketClientError) {
                        _ = try await WebSocket.connect(to: server.url(), configuration: configuration)
                        Issue.record("connected through \(proxy)")
                    } catch {
                        #expect(error == .proxyFailed)
                        #expect(error.proxyError == .rejected)
                        #expect(statuses.contains(error.proxyStatus ?? 0), "\(error)")
                    }
                }
            }
            let restricted = try await ChildProcess.tinyproxy(connectPorts: [443])
            try await ChildProcess.with(restricted) { restricted in
                var configuration = WebSocketClientConfiguration()
                configuration.proxy = try ProxyURL("http://127.0.0.1:\(restricted.port)")
                do throws(WebSocketClientError) {
                    _ = try await WebSocket.connect(to: server.url(), configuration: configuration)
                    Issue.record("connected through a proxy that forbids the port")
                } catch {
                    #expect(error.proxyStatus == 403)
                }
            }
        }
    }

    @Test("microsocks: no password offered, a wrong password, a refused target", .enabled(if: installed))
    func socksRefusals() async throws {
        try await EchoServer.with { server in
            let socks = try await ChildProcess.microsocks(credentials: ("bob", "pa55"))
            try await ChildProcess.with(socks) { socks in
                let cases: [(String, ProxyError)] = [
                    ("socks5://127.0.0.1:\(socks.port)", .noAcceptableMethod),
                    ("socks5://bob:nope@127.0.0.1:\(socks.port)", .authenticationFailed),
                ]
                for (proxy, expected) in cases {
                    var configuration = WebSocketClientConfiguration()
                    configuration.proxy = try ProxyURL(proxy)
                    do throws(WebSocketClientError) {
                        _ = try await WebSocket.connect(to: server.url(), configuration: configuration)
                        Issue.record("connected through \(proxy)")
                    } catch {
                        #expect(error.proxyError == expected, "\(error)")
                    }
                }
            }
            let open = try await ChildProcess.microsocks()
            try await ChildProcess.with(open) { open in
                var configuration = WebSocketClientConfiguration()
                configuration.proxy = try ProxyURL("socks5://127.0.0.1:\(open.port)")
                let closedPort = try await freePort()
                do throws(WebSocketClientError) {
                    _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(closedPort)/", configuration: configuration)
                    Issue.record("connected to a closed port")
                } catch {
                    #expect(error.proxyError == .rejected, "\(error)")
                    #expect(error.proxyError?.socksReply != nil)
                }
            }
        }
    }

    @Test("a proxy that closes before answering, and one that closes the tunnel after 200")
    func closingProxies() async throws {
        // Closes after a partial status line.
        let early = try await ScriptedPeer.start(closeAfterResponse: true) { _, _ in Array("HTTP/1.1 2".utf8) }
        var configuration = WebSocketClientConfiguration()
        configuration.proxy = try ProxyURL("http://127.0.0.1:\(early.port)")
        do throws(WebSocketClientError) {
            _ = try await WebSocket.connect(to: "ws://example.invalid/", configuration: configuration)
            Issue.record("connected")
        } catch {
            #expect(error.proxyError == .closedBeforeReply, "\(error)")
        }
        await early.stop()
        // Opens the tunnel, then closes it before the WebSocket handshake is answered.
        let late = try await ScriptedPeer.start(closeAfterResponse: true) { _, _ in
            Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)
        }
        configuration.proxy = try ProxyURL("http://127.0.0.1:\(late.port)")
        await #expect(throws: WebSocketClientError.closedDuringHandshake) {
            _ = try await WebSocket.connect(to: "ws://example.invalid/", configuration: configuration)
        }
        await late.stop()
    }

    @Test("the connect timeout covers a proxy that never answers")
    func silentProxy() async throws {
        let silent = try await ScriptedPeer.start { _, _ in [] }
        var configuration = WebSocketClientConfiguration()
        configuration.proxy = try ProxyURL("http://127.0.0.1:\(silent.port)")
        configuration.connectTimeout = .milliseconds(300)
        await #expect(throws: WebSocketClientError.timedOut) {
            _ = try await WebSocket.connect(to: "ws://example.invalid/", configuration: configuration)
        }
        await silent.stop()
    }

    @Test("proxyEnvironment: http_proxy is used for ws://, no_proxy bypasses it")
    func environment() async throws {
        try await EchoServer.with { server in
            let proxy = try await TunnelProxy.start(target: server.port)
            var configuration = WebSocketClientConfiguration()
            configuration.proxyEnvironment = ProxyEnvironment(environment: ["HTTP_PROXY": "127.0.0.1:\(proxy.port)"])
            let ws = try await WebSocket.connect(to: server.url(), configuration: configuration)
            await ws.close()
            #expect(proxy.requestedTargets == ["127.0.0.1:\(server.port)"])
            // https_proxy is not used for ws://; no_proxy exempts the host.
            for environment in [
                ["https_proxy": "127.0.0.1:\(proxy.port)"],
                ["http_proxy": "127.0.0.1:\(proxy.port)", "no_proxy": "localhost, 127.0.0.1"],
            ] {
                configuration.proxyEnvironment = ProxyEnvironment(environment: environment)
                let direct = try await WebSocket.connect(to: server.url(), configuration: configuration)
                await direct.close()
            }
            #expect(proxy.requestedTargets.count == 1)
            await proxy.stop()
        }
    }
}
