import ArgumentParser
import WebSocketClient

/// Echoes every message back with its type (delegate API, one copy per message).
struct EchoDelegate: WebSocketDelegate {
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        try? webSocket.send(kind, copying: payload)
    }
}

@main
struct ConformanceClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-conformance-client",
        abstract:
            "An Autobahn fuzzing-server client on the WebSocketClient module, plus an interop self-check mode.",
        discussion: """
            Default mode: connects to URL/getCaseCount (one text message: the case count), then for each case \
            to URL/runCase?case=N&agent=AGENT, echoing every message (text as text, binary as binary) until \
            the server closes, then to URL/updateReports?agent=AGENT.

            --interop: connects to URL itself (an echo server), sends a fixed set of messages (text, UTF-8, \
            binary of 0/125/126/65535/65536/1 MiB bytes, a fragmented message, a ping), checks that each comes \
            back identical, closes with 1000 and prints one line per check; exits 1 on any mismatch.
            """
    )

    @Option(
        help: "The fuzzing server (or, with --interop, the echo server) as a ws:// or wss:// URL."
    )
    var url = "ws://127.0.0.1:9001"

    @Option(help: "The agent name reported to the fuzzing server.")
    var agent = "WebSocketEngine"

    @Option(help: "Cases to run, e.g. '1-300' or '1,5,9-12' (default: all the server has).")
    var cases: String?

    @Option(help: "The longest message accepted, in bytes.")
    var maxMessageLength = 16 * 1024 * 1024

    @Option(help: "PEM file of trust roots for wss:// (default: the system's).")
    var caCert: String?

    @Option(help: "A subprotocol to offer (repeatable).")
    var subprotocol: [String] = []

    @Flag(
        help:
            "Run the interop self-check against an echo server at --url instead of the Autobahn protocol."
    )
    var interop = false

    @Flag(help: "Offer permessage-deflate (RFC 7692) with client_max_window_bits and compress when accepted.")
    var deflate = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(
        help: """
            WebSockets over HTTP/2 (RFC 8441): never, preferred (ALPN h2 on wss://), prior-knowledge (h2c on ws://); \
            both fall back to HTTP/1.1.
            """
    )
    var http2 = "never"

    @Option(
        help: """
            With --interop and --http2: open this many WebSockets through one HTTP/2 connection pool, echo on \
            each, close them, and shut the pool down (instead of the interop checks).
            """
    )
    var pooled: Int?

    func validate() throws {
        if !["never", "preferred", "prior-knowledge"].contains(self.http2) {
            throw ValidationError("--http2 must be never, preferred or prior-knowledge")
        }
        if Logger.Level(rawValue: self.logLevel) == nil {
            throw ValidationError("unknown --log-level '\(self.logLevel)'")
        }
        if let pooled = self.pooled, pooled < 1 || !self.interop || self.http2 == "never" {
            throw ValidationError("--pooled needs a positive count, --interop and --http2")
        }
        if self.maxMessageLength < 1 {
            throw ValidationError("--max-message-length must be positive")
        }
    }

    func run() async throws {
        var logger = Logger(label: "ws-conformance-client")
        logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .info
        var configuration = WebSocketClientConfiguration()
        configuration.webSocket.connection.maxMessageLength = self.maxMessageLength
        configuration.webSocket.connection.maxFramePayloadLength = self.maxMessageLength
        configuration.subprotocols = self.subprotocol
        if self.deflate { configuration.perMessageDeflate = .init() }
        switch self.http2 {
        case "preferred": configuration.http2 = .preferred
        case "prior-knowledge": configuration.http2 = .priorKnowledge
        default: configuration.http2 = .never
        }
        if let caCert {
            #if TLS
            configuration.tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCert))
            #else
            throw ValidationError("--ca-cert \(caCert): this build has no TLS (the package trait TLS is off)")
            #endif
        }
        if self.interop, let pooled = self.pooled {
            let ok = try await PooledCheck(url: self.url, configuration: configuration, count: pooled).run()
            if !ok { throw ExitCode.failure }
            return
        }
        if self.interop {
            let ok = try await InteropCheck(url: self.url, configuration: configuration).run()
            if !ok { throw ExitCode.failure }
            return
        }
        try await self.runAutobahn(configuration: configuration, logger: logger)
    }

    private func runAutobahn(configuration: WebSocketClientConfiguration, logger: Logger) async throws {
        let base = self.url.hasSuffix("/") ? String(self.url.dropLast()) : self.url
        let count = try await WebSocket.withConnection(to: "\(base)/getCaseCount", configuration: configuration) {
            countSocket -> Int? in
            for await message in countSocket.messages {
                return Int(message.text.trimmingSpaces())
            }
            return nil
        }
        guard let count else {
            logger.error("no case count from \(base)/getCaseCount")
            throw ExitCode.failure
        }
        let selected = try self.selectedCases(upTo: count)
        logger.info("running \(selected.count) of \(count) cases as agent \(self.agent)")
        for caseNumber in selected {
            let caseURL = "\(base)/runCase?case=\(caseNumber)&agent=\(self.agent)"
            do {
                let connection = try await WebSocketDelegateConnection.connect(
                    to: caseURL,
                    configuration: configuration
                ) { _ in
                    EchoDelegate()
                }
                let status = try await connection.closed.get()
                logger.debug("case \(caseNumber): closed \(status.code.rawValue) \(status.reason)")
            } catch {
                logger.warning("case \(caseNumber): \(error)")
            }
        }
        try await WebSocket.withConnection(to: "\(base)/updateReports?agent=\(self.agent)", configuration: configuration) {
            report in _ = await report.closeStatus
        }
        logger.info("done")
    }

    private func selectedCases(upTo count: Int) throws -> [Int] {
        guard let cases = self.cases else { return count > 0 ? Array(1...count) : [] }
        var result: [Int] = []
        for part in cases.split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0.trimmingSpaces()) }
            switch bounds.count {
            case 1:
                guard let value = bounds[0] else { throw ValidationError("bad case '\(part)'") }
                result.append(value)
            case 2:
                guard let low = bounds[0], let high = bounds[1], low <= high else {
                    throw ValidationError("bad case range '\(part)'")
                }
                result.append(contentsOf: low...high)
            default:
                throw ValidationError("bad case '\(part)'")
            }
        }
        return result.filter { (1...max(count, 1)).contains($0) && count > 0 }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
