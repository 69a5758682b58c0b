import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServerSentEvents

#if TLS
import NIOSSL
#endif

/// A Server-Sent Events client in the manner of the browser's `EventSource` (WHATWG HTML §9.2.3), on
/// SwiftNIO: an `AsyncSequence` of what the stream delivers, reconnecting by itself.
///
/// ```swift
/// for try await output in try EventSource(url: "http://127.0.0.1:8080/ticker") {
///     if case .event(let event) = output { print(event.lastEventID, event.data) }
/// }
/// ```
///
/// Each connection sends `GET` with `Accept: text/event-stream`, `Cache-Control: no-cache`, the configured
/// header fields (e.g. `Authorization`) and, when the last event ID is not empty, `Last-Event-ID`. The body
/// is parsed by `EventStreamParser` (every rule of §9.2.5-9.2.6).
///
/// Reconnection: when a connection ends (the server closes, the network fails, connect is refused) the
/// iterator waits and connects again, sending the last event ID. The wait is the reconnection time (the
/// server's last `retry` field, else ``Configuration/reconnectionTime``, default 3 s), multiplied by
/// ``Configuration/backoffMultiplier`` for each further consecutive failure to open a stream, capped at
/// ``Configuration/maxReconnectionDelay``, then reduced by a random fraction of up to ``Configuration/jitter``.
/// A stream that opened (200, `text/event-stream`) resets the count.
///
/// No reconnection (§9.2.3 "fail the connection"): a status other than 200 throws
/// ``EventSourceError/badStatus(_:)``, a wrong `Content-Type` ``EventSourceError/wrongContentType(_:)``, and
/// 204 No Content ends the sequence normally. Redirects are not followed (a 3xx is a bad status).
///
/// Each iterator runs its own connections; no task is started. Pull to read: while the consumer does not call
/// `next()`, nothing is read from the socket.
public struct EventSource: AsyncSequence, Sendable {
    public typealias Element = Output

    /// What the stream delivers.
    public enum Output: Sendable, Hashable {
        /// A connection opened (200 with `text/event-stream`): the browser's `open` event.
        case open
        /// An event (type, data, last event ID).
        case event(MessageEvent)
        /// The server set the reconnection time, in milliseconds.
        case retry(Int)
        /// A comment line (heartbeats).
        case comment(String)
    }

    /// Settings of the client. Durations are `Swift.Duration`.
    public struct Configuration: Sendable {
        /// Extra request header fields, e.g. `Authorization`.
        public var headerFields: HTTPFields
        /// The last event ID to send on the first connection (e.g. saved from an earlier run). Default "".
        public var lastEventID: String
        /// The reconnection time until the server sends `retry`. Default 3 s (as browsers).
        public var reconnectionTime: Duration
        /// The growth of the wait for each further consecutive failure. Default 2.
        public var backoffMultiplier: Double
        /// The longest wait between attempts. Default 30 s.
        public var maxReconnectionDelay: Duration
        /// The largest fraction (0...1) randomly taken off each wait, so that clients do not reconnect in step.
        /// Default 0.2.
        public var jitter: Double
        /// Consecutive failed attempts after which the sequence throws ``EventSourceError/gaveUp(lastError:)``;
        /// nil (the default) retries forever, like browsers.
        public var maxReconnectAttempts: Int?
        /// Bound on TCP connect plus TLS plus the response head. Default 10 s.
        public var connectTimeout: Duration
        /// Limits on lines and events (`EventStreamParser.Configuration`); default 1 MiB each.
        public var parser: EventStreamParser.Configuration
        #if TLS
        /// TLS settings for `https://`. Default: system trust roots, full verification.
        public var tls: TLSConfiguration
        #endif
        /// Where connection failures and reconnections are logged (at `debug`).
        public var logger: Logger
        /// How the client waits between attempts; replace it in tests to observe the waits without waiting.
        public var sleep: @Sendable (Duration) async throws -> Void
        /// A random number in 0..<1 for the jitter; replace it in tests for fixed waits.
        public var random: @Sendable () -> Double

        public init(headerFields: HTTPFields = [:], lastEventID: String = "") {
            self.headerFields = headerFields
            self.lastEventID = lastEventID
            self.reconnectionTime = .seconds(3)
            self.backoffMultiplier = 2
            self.maxReconnectionDelay = .seconds(30)
            self.jitter = 0.2
            self.maxReconnectAttempts = nil
            self.connectTimeout = .seconds(10)
            self.parser = .init()
            #if TLS
            self.tls = .makeClientConfiguration()
            #endif
            self.logger = Logger(label: "event-source")
            self.sleep = { try await Task.sleep(for: $0) }
            self.random = { Double.random(in: 0..<1) }
        }
    }

    public let url: EventSourceURL
    public let configuration: Configuration
    public let eventLoopGroup: any EventLoopGroup

    /// - Throws: ``EventSourceError/invalidURL(_:)``.
    public init(
        url: String,
        configuration: Configuration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(EventSourceError) {
        self.url = try EventSourceURL(url)
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(source: self)
    }

    /// The wait before reconnection attempt `failures` (1 for the first attempt after a stream ended), before
    /// jitter: `reconnectionTime × multiplier^(failures - 1)`, at most `maxReconnectionDelay`.
    public static func backoff(
        failures: Int,
        reconnectionTime: Duration,
        multiplier: Double,
        cap: Duration
    ) -> Duration {
        let base = Double(reconnectionTime.components.seconds) + Double(reconnectionTime.components.attoseconds) * 1e-18
        let capSeconds = Double(cap.components.seconds) + Double(cap.components.attoseconds) * 1e-18
        var factor = 1.0
        for _ in 0..<Swift.min(64, Swift.max(0, failures - 1)) { factor *= Swift.max(1, multiplier) }
        let seconds = Swift.min(capSeconds, base * factor)
        return seconds.isFinite ? .milliseconds(Int64((seconds * 1000).rounded())) : cap
    }

    /// Reads one stream after another (see ``EventSource``).
    public struct Iterator: AsyncIteratorProtocol {
        private let source: EventSource
        private var parser: EventStreamParser
        private var pending = CircularBuffer<Output>()
        private var connection: Connection?
        private var failures = 0
        private var reconnectionTime: Duration
        private var finished = false
        private var lastError = ""

        init(source: EventSource) {
            self.source = source
            self.parser = EventStreamParser(
                configuration: source.configuration.parser,
                lastEventID: source.configuration.lastEventID
            )
            self.reconnectionTime = source.configuration.reconnectionTime
        }

        /// The last event ID (sent as `Last-Event-ID` on the next connection).
        public var lastEventID: String { parser.lastEventID }

        /// The next output; nil after 204 No Content.
        /// - Throws: ``EventSourceError`` (no reconnection), or `CancellationError` when the task is cancelled
        ///   (the connection is closed).
        public mutating func next() async throws -> Output? {
            while true {
                if let output = pending.popFirst() { return output }
                if finished { return nil }
                do {
                    try Task.checkCancellation()
                } catch {
                    connection?.close()
                    connection = nil
                    throw error
                }
                if let connection {
                    try await read(from: connection)
                } else {
                    try await connect()
                }
            }
        }

        private mutating func fail(_ error: EventSourceError) throws -> Never {
            finished = true
            connection?.close()
            connection = nil
            throw error
        }

        private mutating func connect() async throws {
            if failures > 0 {
                if let max = source.configuration.maxReconnectAttempts, failures > max {
                    try fail(.gaveUp(lastError: lastError))
                }
                let delay = EventSource.backoff(
                    failures: failures,
                    reconnectionTime: reconnectionTime,
                    multiplier: source.configuration.backoffMultiplier,
                    cap: source.configuration.maxReconnectionDelay
                )
                let jitter = Swift.min(1, Swift.max(0, source.configuration.jitter)) * source.configuration.random()
                let wait = delay * (1 - jitter)
                source.configuration.logger.debug(
                    "reconnecting",
                    metadata: ["url": "\(source.url)", "after": "\(wait)", "last-event-id": "\(parser.lastEventID)"]
                )
                try await source.configuration.sleep(wait)
            }
            failures += 1  // until the stream opens
            do {
                connection = try await Connection.open(source: source, lastEventID: parser.lastEventID)
            } catch {
                lastError = "\(error)"
                source.configuration.logger.debug("connect failed", metadata: ["error": "\(error)"])
            }
        }

        private mutating func read(from connection: Connection) async throws {
            let part: ResponseReader.Part
            do {
                part = try await connection.next()
            } catch {
                part = .failure(error)
            }
            switch part {
            case .head(let head):
                if head.status == .noContent {
                    finished = true
                    connection.close()
                    self.connection = nil
                    return
                }
                guard head.status == .ok else { try fail(.badStatus(Int(head.status.code))) }
                let contentType = head.headers.first(name: "Content-Type")
                let essence = contentType?.split(separator: ";").first?.trimmingCharacters(in: " \t").lowercased()
                guard essence == "text/event-stream" else { try fail(.wrongContentType(contentType)) }
                failures = 0
                pending.append(.open)
            case .body(let bytes):
                do {
                    try parser.parse(bytes.readableBytesView) { output in
                        switch output {
                        case .event(let event): pending.append(.event(event))
                        case .retry(let milliseconds):
                            reconnectionTime = .milliseconds(milliseconds)
                            pending.append(.retry(milliseconds))
                        case .comment(let text): pending.append(.comment(text))
                        }
                    }
                } catch {
                    try fail(.stream(error))
                }
            case .end, .failure:
                if case .failure(let error) = part { lastError = "\(error)" } else { lastError = "connection closed" }
                connection.close()
                self.connection = nil
                parser.finish()
                if failures == 0 { failures = 1 }  // the stream had opened: wait the reconnection time
            }
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result = result.dropFirst() }
        while let last = result.last, set.contains(last) { result = result.dropLast() }
        return result
    }
}

/// One HTTP/1.1 connection carrying one event stream request.
struct Connection: Sendable {
    let channel: any Channel
    private let reader: NIOLoopBound<ResponseReader>

    func next() async throws -> ResponseReader.Part {
        let reader = self.reader
        return try await channel.eventLoop.flatSubmit { reader.value.next(eventLoop: reader.eventLoop) }.get()
    }

    func close() {
        channel.close(promise: nil)
    }

    static func open(source: EventSource, lastEventID: String) async throws -> Connection {
        let url = source.url
        let configuration = source.configuration
        #if TLS
        let sslContext = try url.isSecure ? NIOSSLContext(configuration: configuration.tls) : nil
        let serverHostname = url.isIPLiteral ? nil : url.host
        #else
        if url.isSecure { throw EventSourceError.tlsUnavailable }
        #endif
        let timeout = nanoseconds(configuration.connectTimeout)
        let headTimeout = timeout
        let connection = try await ClientBootstrap(group: source.eventLoopGroup)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    #if TLS
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    #endif
                    try sync.addHTTPClientHandlers()
                    let reader = ResponseReader(headTimeout: headTimeout)
                    try sync.addHandler(reader)
                    return Connection(channel: channel, reader: NIOLoopBound(reader, eventLoop: channel.eventLoop))
                }
            }
        let channel = connection.channel
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target)
        head.headers.add(name: "Host", value: url.hostField)
        head.headers.add(name: "Accept", value: "text/event-stream")
        head.headers.add(name: "Cache-Control", value: "no-cache")
        if !lastEventID.isEmpty {
            head.headers.add(name: "Last-Event-ID", value: lastEventID)
        }
        for field in configuration.headerFields {
            head.headers.add(name: field.name.rawName, value: field.value)
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        do {
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return connection
    }
}

/// `duration` as a `TimeAmount`, saturating at the bounds of `Int64` nanoseconds.
func nanoseconds(_ duration: Duration) -> TimeAmount {
    let (seconds, attoseconds) = duration.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return .nanoseconds(seconds < 0 ? .min : .max) }
    let (total, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    return .nanoseconds(overflow2 ? (seconds < 0 ? .min : .max) : total)
}
