import ArgumentParser
import WebSocketClient

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A command-line WebSocket client on the WebSocketClient module: headers, proxies, redirects, reconnection.
@main
struct WSClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-client",
        abstract: "Connects to a ws:// or wss:// URL, sends the --send messages, prints what arrives.",
        discussion: """
            Received text messages are printed to stdout, one per line; binary ones as '<binary N bytes>'. \
            Connection events (redirects are followed silently; proxy and handshake failures, closes, \
            reconnections) go to stderr. Exits 0 after a normal close (1000) or --count messages, 1 on an \
            error or any other close code.

            Examples:
              ws-client ws://127.0.0.1:9001/ --send hello --count 1
              ws-client wss://example.com/feed --proxy http://user:pw@proxy:3128 --header 'Cookie: a=b'
              ws-client ws://127.0.0.1:9001/ --proxy socks5h://127.0.0.1:1080 --send hi --count 1
              HTTPS_PROXY=http://proxy:3128 ws-client wss://example.com/ --proxy-from-environment
              ws-client ws://127.0.0.1:9001/ --reconnect --send subscribe
            """
    )

    @Argument(help: "The ws:// or wss:// URL.")
    var url: String

    @Option(name: .customLong("header"), help: "A request header field 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "The Origin header field, e.g. https://app.example.")
    var origin: String?

    @Option(help: "The Authorization header field, e.g. 'Bearer TOKEN' (dropped on a redirect to another origin).")
    var authorization: String?

    @Option(help: "A subprotocol to offer (repeatable).")
    var subprotocol: [String] = []

    @Option(help: "A proxy URL: http://[user:password@]host[:port] or socks5h://[user:password@]host[:port].")
    var proxy: String?

    @Flag(help: "Use http_proxy / https_proxy / all_proxy / no_proxy (either case) from the environment.")
    var proxyFromEnvironment = false

    @Option(help: "The most redirects followed (0: none).")
    var maxRedirects = 5

    @Option(help: "Seconds for DNS, TCP, proxy, TLS and the handshake together.")
    var connectTimeout = 10.0

    @Option(help: "PEM file of trust roots for wss:// (default: the system's).")
    var caCert: String?

    @Option(help: "A text message to send after connecting (repeatable; resent after each reconnection).")
    var send: [String] = []

    @Option(help: "Exit (closing with 1000) after this many received messages.")
    var count: Int?

    @Flag(help: "Reconnect with exponential backoff after 1006/1001/1011/1012/1013 and network failures.")
    var reconnect = false

    @Option(help: "With --reconnect: the most attempts in a row before giving up (default: forever).")
    var maxAttempts: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "warning"

    func validate() throws {
        if Logger.Level(rawValue: self.logLevel) == nil { throw ValidationError("unknown --log-level") }
        if let count, count < 1 { throw ValidationError("--count must be positive") }
        // `!(... )` also refuses NaN; the upper bound keeps the milliseconds conversion below in range.
        if !(self.connectTimeout > 0 && self.connectTimeout <= 86_400) {
            throw ValidationError("--connect-timeout must be a number of seconds in (0, 86400]")
        }
        for header in self.headers where Self.field(header) == nil {
            throw ValidationError("--header '\(header)' is not 'Name: value'")
        }
    }

    static func field(_ text: String) -> HTTPField? {
        guard let colon = text.firstIndex(of: ":"),
            let name = HTTPField.Name(String(text[..<colon]).trimmingCharacters())
        else { return nil }
        return HTTPField(name: name, value: String(text[text.index(after: colon)...]).trimmingCharacters())
    }

    func run() async throws {
        var configuration = WebSocketClientConfiguration()
        configuration.logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .warning
        configuration.headerFields.append(contentsOf: self.headers.compactMap(Self.field))
        configuration.origin = self.origin
        configuration.authorization = self.authorization
        configuration.subprotocols = self.subprotocol
        configuration.maxRedirects = self.maxRedirects
        configuration.connectTimeout = .milliseconds(Int64(self.connectTimeout * 1000))
        if let proxy = self.proxy {
            configuration.proxy = try ProxyURL(proxy)
        }
        if self.proxyFromEnvironment {
            configuration.proxyEnvironment = .processEnvironment
        }
        if let caCert {
            #if TLS
            configuration.tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCert))
            #else
            throw ValidationError("--ca-cert \(caCert): this build has no TLS (the package trait TLS is off)")
            #endif
        }
        var received = 0
        let session: (WebSocket) async throws -> Void = { ws in
            for text in self.send { try await ws.send(text: text) }
            for await message in ws.messages {
                Self.output(
                    message.kind == .text ? message.text : "<binary \(message.payload.readableBytes) bytes>",
                    to: 1
                )
                received += 1
                if let count = self.count, received >= count { return }
            }
        }
        let status: CloseStatus
        do {
            if self.reconnect {
                status = try await WebSocket.withReconnectingConnection(
                    to: self.url,
                    configuration: configuration,
                    reconnect: .init(maxAttempts: self.maxAttempts),
                    onEvent: { event in Self.report("\(event)") },
                    session
                )
            } else {
                let ws = try await WebSocket.connect(to: self.url, configuration: configuration)
                try await session(ws)
                status = await ws.close()
            }
        } catch {
            Self.report("\(error)")
            throw ExitCode.failure
        }
        Self.report("closed: \(status.code.rawValue) \(status.reason)")
        if status.code != .normalClosure { throw ExitCode.failure }
    }

    static func report(_ line: String) {
        self.output("ws-client: \(line)", to: 2)
    }

    /// Writes `line` and a newline to file descriptor 1 (stdout) or 2 (stderr), unbuffered.
    static func output(_ line: String, to descriptor: Int32) {
        var text = line + "\n"
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        String(
            self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
        )
    }
}
