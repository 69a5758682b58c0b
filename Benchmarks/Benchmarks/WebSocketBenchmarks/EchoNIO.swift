import Benchmark
import EchoPeers
import NIOCore
import NIOEmbedded
import NIOWebSocket
import WebSocketCore
import WebSocketNIO

// MARK: - Echo through a NIO pipeline

// The server side of compare.sh's echo, without sockets: masked client frames go into a channel pipeline on an
// `EmbeddedChannel` and the echoed server frames come out of it. What is measured is the pipeline alone, from the
// first `channelRead` to the last `channelReadComplete` of an iteration: the handlers, their buffers, their
// writes and flushes. The harness's own work is outside it or allocates nothing:
//
// - The reads (`ByteBuffer`s) are built before the measurement and held by the harness for the whole run, as NIO's
//   receive-buffer pool holds each read (`NIOPooledRecvBufferAllocator`); the pool's allocations are not the
//   pipeline's. In ws-echo's configuration our handler unmasks in NIO's buffer (`unmasksInReceivedBuffer`), so the
//   masked bytes are restored between iterations, outside the measurement.
// - The socket is an outbound handler at the head of the pipeline (`EchoWriteSink`): it counts the bytes written
//   and drops each buffer, as a socket that accepts everything does once it has written it; nothing reaches
//   `EmbeddedChannel`'s own outbound buffers (which would allocate per write). The echoed bytes are checked
//   after the measurement (byte count per iteration; the full output of ours and NIO's compared at start-up).
// - `tcp-echo` (a handler that writes each read back, flushed at read complete) runs through the same harness:
//   its 0 mallocs per iteration show that the harness adds none.
//
// The cases are those of compare.sh: 16 messages of 64 B in one read, 4 of 1 KiB in one read, 64 KiB (two in
// flight) and 1 MiB, cut into 64 KiB reads as a socket delivers them (NIO's default receive buffer is at most
// 64 KiB). Ours runs in ws-echo's configuration and in the default one (a private copy of each read). Thresholds:
// `mallocCountTotal` of ours per iteration, at the value measured (`Thresholds/*EchoNIO*`, see BENCHMARKS.md).

/// One echo case: `messages` binary messages of `size` bytes, as one client stream cut into reads of at most
/// `readSize` bytes.
struct EchoNIOCase {
    let size: Int
    let messages: Int
    let readSize = 64 << 10

    var name: String { "EchoNIO.\(sizeName(self.size)).x\(self.messages)" }

    static let all = [
        EchoNIOCase(size: 64, messages: 16),
        EchoNIOCase(size: 1 << 10, messages: 4),
        EchoNIOCase(size: 64 << 10, messages: 2),
        EchoNIOCase(size: 1 << 20, messages: 1),
    ]
}

/// Our echo's allocation count may not move: `mallocCountTotal` per iteration must equal the committed
/// `Thresholds/WebSocketBenchmarks.EchoNIO.<case>.<impl>.p90.json` in `thresholds check` (p90), and
/// the baseline's in `baseline check` (p50 and p90), exactly (a tolerance of 0 allocations).
var echoAllocations: [BenchmarkMetric: BenchmarkThresholds] {
    tolerances.merging([.mallocCountTotal: .init(absolute: [.p50: 0, .p90: 0])]) { $1 }
}

/// The socket: swallows what the pipeline writes, like a socket that takes everything at once.
final class EchoWriteSink: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer

    var bytes = 0
    var writes = 0
    var flushes = 0
    /// When set (outside the measurement), every written byte is appended here.
    var capture: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = Self.unwrapOutboundIn(data)
        self.writes &+= 1
        self.bytes &+= buffer.readableBytes
        if self.capture != nil {
            self.capture!.writeImmutableBuffer(buffer)
        }
        promise?.succeed()
    }

    func flush(context: ChannelHandlerContext) {
        self.flushes &+= 1
    }
}

/// ws-echo's delegate (`Sources/ws-echo/WSEcho.swift`): every message goes back with its type, copied behind the
/// frame header (or written from our own buffer when it is one, see `WebSocketHandler.ownedBuffer`).
struct BenchEchoDelegate: WebSocketDelegate {
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        do {
            try webSocket.send(kind, copying: payload)
        } catch {
            preconditionFailure("echo not sent: \(error)")
        }
    }
}

/// An echo pipeline on an active `EmbeddedChannel`, fed with the reads of one case.
final class EchoPipeline {
    let channel: EmbeddedChannel
    let sink = EchoWriteSink()
    /// The masked client stream, and the reads handed to the pipeline (views of their own storage).
    let pristine: [UInt8]
    var reads: [ByteBuffer]
    /// Whether the pipeline unmasks in the read buffers (the masked bytes are then restored before each pass).
    let mutatesReads: Bool

    init(
        wire: Wire,
        readSize: Int,
        mutatesReads: Bool,
        install: (ChannelPipeline.SynchronousOperations) throws -> Void
    ) {
        self.channel = EmbeddedChannel()
        try! self.channel.pipeline.syncOperations.addHandler(self.sink)
        try! install(self.channel.pipeline.syncOperations)
        try! self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        self.pristine = wire.bytes
        self.reads = stride(from: 0, to: wire.bytes.count, by: readSize).map { start in
            let end = min(start + readSize, wire.bytes.count)
            return wire.bytes[start..<end].withUnsafeBytes { ByteBuffer(copying: $0) }
        }
        self.mutatesReads = mutatesReads
    }

    /// Outside the measurement: the masked bytes back into the reads.
    func prepare() {
        guard self.mutatesReads else { return }
        var offset = 0
        for index in self.reads.indices {
            let count = self.reads[index].readableBytes
            self.pristine[offset..<(offset + count)].withUnsafeBytes { bytes in
                _ = self.reads[index].setBytes(bytes, at: self.reads[index].readerIndex)
            }
            offset += count
        }
    }

    /// The measured part: every read through the pipeline, each followed by read complete (as a socket read is).
    @inline(__always)
    func run() {
        let pipeline = self.channel.pipeline.syncOperations
        for read in self.reads {
            pipeline.fireChannelRead(NIOAny(read))
            pipeline.fireChannelReadComplete()
        }
    }

    /// One pass with every written byte captured (start-up check, not measured).
    func capturedPass() -> [UInt8] {
        self.prepare()
        self.sink.capture = ByteBuffer()
        self.run()
        let out = self.sink.capture.map { Array($0.readableBytesView) } ?? []
        self.sink.capture = nil
        return out
    }
}

/// ws-echo's WebSocket configuration (16 MiB messages), unmasking in NIO's buffer or in a private copy.
func echoConfiguration(unmasksInReceivedBuffer: Bool) -> WebSocketConfiguration {
    var configuration = WebSocketConfiguration()
    configuration.connection.maxMessageLength = 16 << 20
    configuration.connection.maxFramePayloadLength = 16 << 20
    configuration.unmasksInReceivedBuffer = unmasksInReceivedBuffer
    return configuration
}

func echoNIOBenchmarks() {
    for echo in EchoNIOCase.all {
        let wire = Wire.binaryFrames(size: echo.size, count: echo.messages)
        // Server frames: the same payloads, 4 bytes of masking key less per frame.
        let echoedBytes = wire.bytes.count - 4 * echo.messages

        // As ws-echo configures it (Sources/ws-echo/WSEcho.swift): unmasked in NIO's buffer.
        let ours = EchoPipeline(wire: wire, readSize: echo.readSize, mutatesReads: true) { operations in
            try operations.addWebSocketDelegate(
                role: .server,
                configuration: echoConfiguration(unmasksInReceivedBuffer: true),
                delegate: BenchEchoDelegate()
            )
        }
        // The default configuration: each read is unmasked in a private copy (kept from read to read).
        let oursCopy = EchoPipeline(wire: wire, readSize: echo.readSize, mutatesReads: false) { operations in
            try operations.addWebSocketDelegate(
                role: .server,
                configuration: echoConfiguration(unmasksInReceivedBuffer: false),
                delegate: BenchEchoDelegate()
            )
        }
        let nio = EchoPipeline(wire: wire, readSize: echo.readSize, mutatesReads: false) { operations in
            // What NIOWebSocketServerUpgrader installs (encoder, decoder, protocol error handler), then the echo.
            try operations.addHandler(WebSocketFrameEncoder())
            try operations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 16 << 20)))
            try operations.addHandler(WebSocketProtocolErrorHandler())
            try operations.addHandler(NIOWebSocketEchoHandler())
        }
        let tcp = EchoPipeline(wire: wire, readSize: echo.readSize, mutatesReads: false) { operations in
            try operations.addHandler(TCPEchoHandler())
        }

        // Start-up check: both echo the same server frames, byte for byte.
        let oursOut = ours.capturedPass()
        let nioOut = nio.capturedPass()
        precondition(oursOut.count == echoedBytes && oursOut == nioOut, "\(echo.name): echoes differ")
        precondition(oursCopy.capturedPass() == oursOut, "\(echo.name): echoes differ (private copy)")
        precondition(tcp.capturedPass() == wire.bytes, "\(echo.name): TCP echo differs")

        for (label, pipeline, expected, configuration) in [
            ("ours-WebSocketHandler", ours, echoedBytes, Benchmark.Configuration(thresholds: echoAllocations)),
            ("ours-WebSocketHandler-copy", oursCopy, echoedBytes, Benchmark.Configuration(thresholds: echoAllocations)),
            ("nio-WebSocketFrameDecoder", nio, echoedBytes, Benchmark.Configuration()),
            ("tcp-echo", tcp, wire.bytes.count, Benchmark.Configuration()),
        ] {
            Benchmark("\(echo.name).\(label)", configuration: configuration) { benchmark in
                pipeline.prepare()
                let before = pipeline.sink.bytes
                benchmark.startMeasurement()
                pipeline.run()
                benchmark.stopMeasurement()
                precondition(pipeline.sink.bytes - before == expected, "\(echo.name).\(label): short echo")
            }
        }
    }
}
