import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import ServerSentEvents

/// A minimal h2c (prior knowledge) client for the event stream tests: one connection, `GET` streams whose
/// headers, DATA and end are recorded. Third-party peers (Python `h2`, Chromium) are in Tests/HTTP2.
final class HTTP2TestClient: Sendable {
    let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    private init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    static func connect(port: Int) async throws -> HTTP2TestClient {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let (channel, multiplexer) = try await bootstrap.connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client,
                    connectionConfiguration: .init(),
                    streamConfiguration: .init(),
                    inboundStreamInitializer: { $0.close() }
                )
                return (channel, multiplexer)
            }
        }
        return HTTP2TestClient(channel: channel, multiplexer: multiplexer)
    }

    /// Opens a `GET` stream to `path` with extra header fields.
    func get(_ path: String, _ extra: [(String, String)] = []) async throws -> HTTP2TestStream {
        let recorder = HTTP2TestStream()
        var headers: HPACKHeaders = [
            ":method": "GET", ":scheme": "http", ":path": path, ":authority": "127.0.0.1",
        ]
        for (name, value) in extra { headers.add(name: name, value: value) }
        let requestHeaders = headers
        let stream = try await multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    RecordingHandler(recorder: recorder, request: requestHeaders)
                )
            }
        }.get()
        recorder.channel.withLockedValue { $0 = stream }
        return recorder
    }

    func close() async {
        try? await channel.close()
    }
}

/// What one stream received.
final class HTTP2TestStream: Sendable {
    struct State {
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        /// END_STREAM received.
        var ended = false
        /// The error that closed the stream (e.g. RST_STREAM from the server).
        var error: String?
        var closed = false
    }

    let state = NIOLockedValueBox(State())
    let channel = NIOLockedValueBox<(any Channel)?>(nil)

    var status: String? { state.withLockedValue { $0.headers[":status"] } }
    var headers: [String: String] { state.withLockedValue { $0.headers } }
    var ended: Bool { state.withLockedValue { $0.ended } }
    var isClosed: Bool { state.withLockedValue { $0.closed } }
    var error: String? { state.withLockedValue { $0.error } }
    var body: [UInt8] { state.withLockedValue { $0.body } }

    var outputs: [EventStreamParser.Output] {
        var parser = EventStreamParser()
        return (try? parser.parse(body)) ?? []
    }

    var events: [MessageEvent] {
        outputs.compactMap { if case .event(let event) = $0 { event } else { nil } }
    }

    var comments: Int {
        outputs.filter { if case .comment = $0 { true } else { false } }.count
    }

    /// Resets the stream (RST_STREAM CANCEL).
    func reset() {
        channel.withLockedValue { $0 }?.close(promise: nil)
    }
}

private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    let recorder: HTTP2TestStream
    let request: HPACKHeaders

    init(recorder: HTTP2TestStream, request: HPACKHeaders) {
        self.recorder = recorder
        self.request = request
    }

    func channelActive(context: ChannelHandlerContext) {
        let headers = HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true))
        context.writeAndFlush(wrapOutboundOut(headers), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            recorder.state.withLockedValue { state in
                for (name, value, _) in headers.headers { state.headers[name] = value }
                if headers.endStream { state.ended = true }
            }
        case .data(let data):
            if case .byteBuffer(let buffer) = data.data {
                recorder.state.withLockedValue { $0.body += buffer.readableBytesView }
            }
            if data.endStream { recorder.state.withLockedValue { $0.ended = true } }
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        recorder.state.withLockedValue { $0.error = "\(error)" }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        recorder.state.withLockedValue { $0.closed = true }
        context.fireChannelInactive()
    }
}
