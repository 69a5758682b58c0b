import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOTLS

#if TLS
import NIOSSL
#endif

/// The HTTP/2 side of the server's pipeline: ALPN over TLS, h2c prior knowledge on a plain port, the HTTP/2
/// connection handler with its settings, and the per-stream handler.
extension Server {
    #if TLS
    /// The TLS configuration with `h2` and `http/1.1` offered by ALPN when HTTP/2 is on and the application set
    /// no protocols of its own.
    static func tlsConfigurationOfferingHTTP2(_ configuration: Configuration) -> TLSConfiguration? {
        guard var tls = configuration.tls else { return nil }
        if configuration.http2 != nil, tls.applicationProtocols.isEmpty {
            tls.applicationProtocols = ["h2", "http/1.1"]
        }
        return tls
    }
    #endif

    /// Installs the protocol selection after TLS (or on a plain connection). Returns false when HTTP/2 is off
    /// for this connection, in which case the caller installs the HTTP/1.1 handlers itself.
    static func initializeProtocolSelection(channel: any Channel, shared: Shared, isSecure: Bool) throws -> Bool {
        guard let http2 = shared.configuration.http2 else { return false }
        let pipeline = channel.pipeline.syncOperations
        if isSecure {
            // Until ALPN picks a protocol the connection is tracked (closed on shutdown) and bounded by the
            // handshake timeout, as the HTTP/1.1 handlers bound it otherwise.
            shared.tracker.add(channel)
            let selected = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let timeout = channel.eventLoop.scheduleTask(
                in: TimeAmount(saturating: shared.configuration.handshakeTimeout)
            ) {
                if !selected.value { channel.close(promise: nil) }
            }
            channel.closeFuture.whenComplete { _ in timeout.cancel() }
            let alpn = ApplicationProtocolNegotiationHandler { result, channel in
                selected.value = true
                timeout.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    if case .negotiated("h2") = result {
                        try Self.initializeHTTP2(channel: channel, shared: shared, isSecure: true)
                    } else {
                        try Self.initializeHTTP(channel: channel, shared: shared, isSecure: true)
                    }
                }
            }
            try pipeline.addHandler(alpn)
            return true
        }
        guard http2.cleartextPriorKnowledge else { return false }
        shared.tracker.add(channel)
        try pipeline.addHandler(HTTP2PrefaceSniffer(shared: shared))
        return true
    }

    /// The HTTP/2 settings this server sends (RFC 9113 §6.5.2), with `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`
    /// only when a WebSocket route exists (RFC 8441 §3).
    static func http2Settings(shared: Shared) -> HTTP2Settings {
        let http2 = shared.configuration.http2 ?? .init()
        var settings: HTTP2Settings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: max(http2.maxConcurrentStreams, 0)),
            HTTP2Setting(parameter: .initialWindowSize, value: min(max(http2.streamWindowSize, 0), 0x7FFF_FFFF)),
            HTTP2Setting(parameter: .maxHeaderListSize, value: max(http2.maxHeaderListSize, 0)),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        if !shared.routes.isEmpty {
            settings.append(HTTP2Setting(parameter: .enableConnectProtocol, value: 1))
        }
        return settings
    }

    /// Installs the HTTP/2 connection handler; every stream the client opens gets an ``HTTP2StreamHandler``.
    static func initializeHTTP2(channel: any Channel, shared: Shared, isSecure: Bool) throws {
        let http2 = shared.configuration.http2 ?? .init()
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = Self.http2Settings(shared: shared)
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = min(max(http2.streamWindowSize, 1), 0x7FFF_FFFF)
        let waterMark = shared.webSocketConfiguration.outboundWaterMark
        stream.outboundBufferSizeHighWatermark = waterMark.high
        stream.outboundBufferSizeLowWatermark = waterMark.low
        let state = HTTP2ConnectionState(
            channel: channel,
            maxWebSockets: http2.maxWebSocketsPerConnection,
            connectProtocolEnabled: !shared.routes.isEmpty,
            idleTimeout: http2.idleTimeout
        )
        channel.closeFuture.assumeIsolated().whenComplete { _ in state.stop() }
        let boundState = NIOLoopBound(state, eventLoop: channel.eventLoop)
        // Before NIOHTTP2Handler: it sees the bytes of every frame written (RFC 9113 §5.4.1 close on GOAWAY).
        try channel.pipeline.syncOperations.addHandler(HTTP2GoAwayObserver())
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            inboundStreamInitializer: { streamChannel in
                streamChannel.eventLoop.makeCompletedFuture {
                    let handler = HTTP2StreamHandler(shared: shared, connection: boundState.value, isSecure: isSecure)
                    try streamChannel.pipeline.syncOperations.addHandler(handler)
                }
            }
        )
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionErrorHandler(shared: shared))
        shared.tracker.add(channel)
        shared.http2Connections.add(channel, state: boundState)
        shared.logger.debug(
            "HTTP/2 connection",
            metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "tls": "\(isSecure)"]
        )
    }
}

/// What the streams of one HTTP/2 connection share; confined to the connection's event loop.
final class HTTP2ConnectionState {
    let channel: any Channel
    let maxWebSockets: Int
    let connectProtocolEnabled: Bool
    /// WebSockets open or being decided on this connection.
    var webSockets = 0
    /// The highest stream ID the client opened, for GOAWAY (RFC 9113 §6.8).
    var lastStreamID = HTTP2StreamID(0)
    var sentGoAway = false
    /// Request streams open now.
    private var openStreams = 0
    private let idleTimeout: TimeAmount
    private var idleTimer: Scheduled<Void>?

    init(channel: any Channel, maxWebSockets: Int, connectProtocolEnabled: Bool, idleTimeout: Duration) {
        self.channel = channel
        self.maxWebSockets = maxWebSockets
        self.connectProtocolEnabled = connectProtocolEnabled
        self.idleTimeout = TimeAmount(saturating: idleTimeout)
        self.armIdleTimer()
    }

    func streamOpened() {
        openStreams += 1
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamClosed() {
        openStreams -= 1
        if openStreams == 0 { armIdleTimer() }
    }

    /// With no stream open for ``idleTimeout``: GOAWAY, then close.
    private func armIdleTimer() {
        idleTimer?.cancel()
        idleTimer = channel.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [weak self] in
            guard let self, self.openStreams == 0 else { return }
            self.goAway()
            self.channel.close(promise: nil)
        }
    }

    /// Cancels the idle timer (the connection is closed).
    func stop() {
        idleTimer?.cancel()
        idleTimer = nil
    }

    /// Sends GOAWAY with NO_ERROR and the last stream the server will process (RFC 9113 §6.8), once.
    func goAway() {
        guard !self.sentGoAway, self.channel.isActive else { return }
        self.sentGoAway = true
        let frame = HTTP2Frame(
            streamID: .rootStream,
            payload: .goAway(lastStreamID: self.lastStreamID, errorCode: .noError, opaqueData: nil)
        )
        self.channel.writeAndFlush(frame, promise: nil)
    }
}

/// Every open HTTP/2 connection of a server, for the GOAWAY of a graceful shutdown, and the counters that show
/// which WebSockets ran over HTTP/2.
final class HTTP2ConnectionRegistry: Sendable {
    private struct Entry: Sendable {
        var channel: any Channel
        var state: NIOLoopBound<HTTP2ConnectionState>
    }

    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])
    private let counters = NIOLockedValueBox(Server.HTTP2Statistics())

    func add(_ channel: any Channel, state: NIOLoopBound<HTTP2ConnectionState>) {
        let id = ObjectIdentifier(channel)
        self.entries.withLockedValue { $0[id] = Entry(channel: channel, state: state) }
        self.counters.withLockedValue { $0.connections += 1 }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.entries.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    /// Sends GOAWAY (NO_ERROR) on every open HTTP/2 connection.
    func goAwayAll() {
        let entries = self.entries.withLockedValue { Array($0.values) }
        for entry in entries {
            entry.channel.eventLoop.execute { entry.state.value.goAway() }
        }
    }

    func webSocketOpened() { self.counters.withLockedValue { $0.webSocketsOpened += 1; $0.openWebSockets += 1 } }
    func webSocketClosed() { self.counters.withLockedValue { $0.openWebSockets -= 1 } }
    func streamOpened() { self.counters.withLockedValue { $0.streams += 1 } }
    func eventStreamOpened() {
        self.counters.withLockedValue { $0.eventStreamsOpened += 1; $0.openEventStreams += 1 }
    }
    func eventStreamClosed() { self.counters.withLockedValue { $0.openEventStreams -= 1 } }

    var statistics: Server.HTTP2Statistics { self.counters.withLockedValue { $0 } }
}

extension Server {
    /// Counters of the server's HTTP/2 side since it started (see ``Server/http2Statistics``).
    public struct HTTP2Statistics: Sendable, Hashable {
        /// HTTP/2 connections accepted (ALPN `h2` or h2c prior knowledge).
        public var connections = 0
        /// Request streams opened by clients.
        public var streams = 0
        /// WebSockets accepted over HTTP/2 streams (RFC 8441), in total.
        public var webSocketsOpened = 0
        /// WebSockets over HTTP/2 streams open now.
        public var openWebSockets = 0
        /// Server-Sent Events streams (``EventStreamRoute``) answered over HTTP/2 streams, in total.
        public var eventStreamsOpened = 0
        /// Server-Sent Events streams over HTTP/2 streams open now.
        public var openEventStreams = 0

        /// All counters zero.
        public init() {}
    }

    /// What ran over HTTP/2 so far: connections, streams, WebSockets and event streams over HTTP/2 streams.
    public var http2Statistics: HTTP2Statistics { self.shared.http2Connections.statistics }
}

/// Logs the errors NIOHTTP2 reports on a connection. It has already answered them: a stream error with
/// RST_STREAM (that stream alone fails), a connection error with GOAWAY. The connection is not closed here, since
/// the two look alike at this point: a peer that stays after a GOAWAY is closed by the idle timeout once its
/// streams are gone (``Server/HTTP2Configuration/idleTimeout``). It does close the connection when the client
/// closed its side of TCP.
final class HTTP2ConnectionErrorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private let shared: Server.Shared

    init(shared: Server.Shared) {
        self.shared = shared
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client closed its side of the TCP connection (the listener allows half-closure for HTTP/1.1).
            // An HTTP/2 connection has no half-closed state: its streams (WebSockets, event streams) end now
            // rather than when the server next writes.
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        #if TLS
        if error is NIOSSLError || error is BoringSSLError {
            // Usually a client that left without close_notify; nothing to answer on a broken TLS session.
            shared.logger.debug("TLS error on an HTTP/2 connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        #endif
        shared.logger.info(
            "HTTP/2 protocol error",
            metadata: ["peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)"]
        )
        // NIOHTTP2 reports stream errors here too (it has reset the stream; the connection goes on), and
        // connection errors after writing GOAWAY, whereupon the endpoint MUST close the TCP connection (RFC 9113
        // §5.4.1). The errors of its flood limits (rapid reset and the like) are always connection errors; the
        // others are told by the GOAWAY just written. One exception: a stream beyond
        // SETTINGS_MAX_CONCURRENT_STREAMS, which RFC 9113 §5.1.2 makes a stream error but NIOHTTP2 answers with
        // GOAWAY PROTOCOL_ERROR (last stream ID 2^31-1): the streams already open are kept until they end.
        let wroteErrorGoAway =
            (try? context.pipeline.syncOperations.handler(type: HTTP2GoAwayObserver.self).sawErrorGoAway) ?? false
        if Self.isFloodError(error) || (wroteErrorGoAway && !(error is NIOHTTP2Errors.MaxStreamsViolation)) {
            context.close(promise: nil)
        }
    }

    private static func isFloodError(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames, is NIOHTTP2Errors.ExcessiveControlFrames,
            is NIOHTTP2Errors.ExcessiveEmptyDataFrames, is NIOHTTP2Errors.ExcessiveStreamErrors,
            is NIOHTTP2Errors.ExcessiveNumberOfGlitches, is NIOHTTP2Errors.ExcessiveContinuationFrames,
            is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock, is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering:
            true
        default:
            false
        }
    }
}

/// On a plain port with h2c prior knowledge on: reads until the first bytes tell the HTTP/2 connection preface
/// (RFC 9113 §3.4, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) from an HTTP/1.1 request, installs the matching handlers,
/// and replays what it read. Buffers at most the 24 bytes of the preface.
final class HTTP2PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let shared: Server.Shared
    private var buffered: ByteBuffer?
    private var decided = false
    private var timeout: Scheduled<Void>?

    init(shared: Server.Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        if buffered == nil {
            buffered = incoming
        } else {
            buffered?.writeBuffer(&incoming)
        }
        guard let bytes = buffered else { return }
        let count = min(bytes.readableBytes, Self.preface.count)
        let prefix = bytes.getBytes(at: bytes.readerIndex, length: count) ?? []
        if prefix != Array(Self.preface[..<count]) {
            decide(http2: false, context: context)
        } else if count == Self.preface.count {
            decide(http2: true, context: context)
        }
    }

    private func decide(http2: Bool, context: ChannelHandlerContext) {
        decided = true
        do {
            if http2 {
                try Server.initializeHTTP2(channel: context.channel, shared: shared, isSecure: false)
            } else {
                try Server.initializeHTTP(channel: context.channel, shared: shared, isSecure: false)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        timeout?.cancel()
        timeout = nil
        let bytes = buffered
        buffered = nil
        if let bytes {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A client that sends nothing is dropped after the handshake timeout, as on HTTP/1.1.
        timeout = context.eventLoop.assumeIsolated().scheduleTask(
            in: TimeAmount(saturating: shared.configuration.handshakeTimeout)
        ) { [weak self] in
            guard let self, !self.decided else { return }
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffered = nil
        context.fireChannelInactive()
    }
}
