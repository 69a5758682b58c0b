import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketTestSupport

/// A raw TCP client for server tests: sends exactly the bytes given, records everything received.
public final class RawTestClient: Sendable {
    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<(bytes: [UInt8], closed: Bool)>(([], false))

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.received.withLockedValue { $0.bytes += buffer.readableBytesView }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.received.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    private let channel: any Channel
    private let recorder: Recorder

    private init(channel: any Channel, recorder: Recorder) {
        self.channel = channel
        self.recorder = recorder
    }

    /// Connects to 127.0.0.1:`port`, over TLS (any certificate accepted) when `tls` is true.
    /// `receiveBufferSize` sets SO_RCVBUF (small values make backpressure visible sooner); `autoRead: false`
    /// reads nothing until ``startReading()``.
    public static func connect(
        port: Int,
        tls: Bool = false,
        receiveBufferSize: Int? = nil,
        autoRead: Bool = true
    ) async throws -> RawTestClient {
        let recorder = Recorder()
        let sslContext: NIOSSLContext?
        if tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            sslContext = try NIOSSLContext(configuration: configuration)
        } else {
            sslContext = nil
        }
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelOption(.autoRead, value: autoRead)
        if let receiveBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBufferSize))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: nil)
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(recorder)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return RawTestClient(channel: channel, recorder: recorder)
    }

    /// Sends all bytes in one write.
    public func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    public func send(_ text: String) async throws {
        try await self.send(Array(text.utf8))
    }

    /// Turns reading on (for a client connected with `autoRead: false`).
    public func startReading() async throws {
        try await self.channel.setOption(.autoRead, value: true).get()
    }

    public var received: [UInt8] { self.recorder.received.withLockedValue { $0.bytes } }
    public var isClosed: Bool { self.recorder.received.withLockedValue { $0.closed } }

    /// The response head received so far, with the bytes behind it.
    public var response: RawResponse? { RawResponse(self.received) }

    /// Waits until `condition` holds for the bytes received so far, or the peer closed, or `timeout` passed.
    @discardableResult
    public func wait(
        timeout: Duration = .seconds(5),
        until condition: @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async -> [UInt8] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let (bytes, closed) = self.recorder.received.withLockedValue { ($0.bytes, $0.closed) }
            if closed || condition(bytes) { return bytes }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return self.received
    }

    /// Waits for the response head and returns it (nil if none came in time).
    public func waitForResponse(timeout: Duration = .seconds(5)) async -> RawResponse? {
        RawResponse(await self.wait(timeout: timeout) { RawResponse.hasHead($0) })
    }

    /// Waits for the first complete frame behind the response head after `consumed` bytes of what followed it.
    public func waitForFrame(after consumed: Int = 0, timeout: Duration = .seconds(10)) async -> RawFrame? {
        let bytes = await self.wait(timeout: timeout) { RawResponse($0)?.frame(after: consumed) != nil }
        return RawResponse(bytes)?.frame(after: consumed)
    }

    public func close() async {
        try? await self.channel.close()
    }
}
