import ArgumentParser
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketCore
import WebSocketDeflate
import WebSocketNIO
import WebSocketServer

/// Echoes every WebSocket message back with its type, on the callback API (one copy per message: the payload is
/// copied right behind the frame header into a single outbound buffer).
struct EchoDelegate: WebSocketDelegate {
    let logger: Logger

    func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        do {
            try webSocket.send(kind, copying: payload)
        } catch {
            self.logger.debug("echo not sent: \(error)")
        }
    }

    func webSocket(_ webSocket: WebSocketContext, didCloseWith status: CloseStatus) {
        self.logger.debug("connection closed: \(status.code.rawValue) \(status.reason)")
    }
}

struct WSEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-echo",
        abstract: "A WebSocket echo server (RFC 6455): every message comes back with its type."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one; the chosen port is logged).")
    var port = 9001

    @Option(help: "PEM certificate chain: serve wss:// (needs --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(help: "The largest message (and frame) accepted, in bytes; larger ones fail with 1009.")
    var maxMessageSize = 16 * 1024 * 1024

    @Option(help: "Send a ping after this many idle seconds and drop peers that do not answer (0: no heartbeat).")
    var pingInterval = 0

    @Option(help: "With --ping-interval: seconds to wait for the pong (or any traffic) before dropping the peer.")
    var pongTimeout = 20

    @Flag(help: "Accept permessage-deflate (RFC 7692) offers and compress echoed messages.")
    var deflate = false

    @Flag(
        help: "With --deflate: no context takeover and 512-byte windows (least memory per connection)."
    )
    var deflateLowMemory = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if (self.tlsCert == nil) != (self.tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if self.pingInterval < 0 || self.pongTimeout < 1 {
            throw ValidationError("--ping-interval must be >= 0 and --pong-timeout >= 1")
        }
        if self.maxMessageSize < 1 {
            throw ValidationError("--max-message-size must be positive")
        }
    }

    func run() async throws {
        var logger = Logger(label: "ws-echo")
        logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .info

        var configuration = WebSocketConfiguration()
        configuration.connection.maxMessageLength = self.maxMessageSize
        configuration.connection.maxFramePayloadLength = self.maxMessageSize
        if self.pingInterval > 0 {
            configuration.connection.pingInterval = .seconds(self.pingInterval)
            configuration.connection.pongTimeout = .seconds(self.pongTimeout)
        }

        var tls: TLSConfiguration?
        if let tlsCert, let tlsKey {
            tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tlsCert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tlsKey, format: .pem))
            )
        }

        var serverConfiguration = WebSocketServer.Configuration(
            host: self.host,
            port: self.port,
            tls: tls,
            webSocket: configuration
        )
        if self.deflate {
            serverConfiguration.perMessageDeflate = self.deflateLowMemory ? .lowMemory : .init()
        }
        let delegateLogger = logger
        let server = try await WebSocketServer.start(
            configuration: serverConfiguration,
            routes: [
                WebSocketRoute(path: "/", handler: .callbacks { _ in EchoDelegate(logger: delegateLogger) })
            ]
        )
        logger.info(
            "listening on \(tls == nil ? "ws" : "wss")://\(self.host):\(server.port)/\(self.deflate ? " (permessage-deflate)" : "")"
        )

        let signal = await TerminationSignal.wait()
        logger.info("received \(signal), shutting down")
        await server.shutdown()
        logger.info("stopped")
    }

}

// `main.swift` cannot use `@main`: parse, then run the async body.
let command = WSEcho.parseOrExit()
do {
    try await command.run()
} catch {
    WSEcho.exit(withError: error)
}
