import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// A raw TCP client for server tests: sends exactly the bytes given, records everything received.
final class RawTestClient: Sendable {
    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<(bytes: [UInt8], closed: Bool)>(([], false))

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0.bytes += buffer.readableBytesView }
        }

        func channelInactive(context: ChannelHandlerContext) {
            received.withLockedValue { $0.closed = true }
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
    static func connect(port: Int, tls: Bool = false) async throws -> RawTestClient {
        let recorder = Recorder()
        var sslContext: NIOSSLContext?
        if tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            sslContext = try NIOSSLContext(configuration: configuration)
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: false)
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
    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    var received: [UInt8] { recorder.received.withLockedValue { $0.bytes } }
    var isClosed: Bool { recorder.received.withLockedValue { $0.closed } }

    /// Waits until `condition` holds for the bytes received so far, or the peer closed, or `timeout` passed.
    @discardableResult
    func wait(
        timeout: Duration = .seconds(5),
        until condition: @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async -> [UInt8] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let (bytes, closed) = recorder.received.withLockedValue { ($0.bytes, $0.closed) }
            if closed || condition(bytes) { return bytes }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return received
    }

    func close() async {
        try? await channel.close()
    }
}

/// A parsed HTTP/1.1 response head plus what followed it.
struct RawResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var rest: [UInt8]

    init?(_ bytes: [UInt8]) {
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = bytes.firstRange(of: terminator) else { return nil }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let code = Int(statusLine[1]) else {
            return nil
        }
        status = code
        headers = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
            return (String(line[..<colon]), String(value))
        }
        rest = Array(bytes[end.upperBound...])
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var body: String { String(decoding: rest, as: UTF8.self) }

    /// Whether `bytes` hold a complete response head.
    static func hasHead(_ bytes: [UInt8]) -> Bool {
        bytes.firstRange(of: Array("\r\n\r\n".utf8)) != nil
    }
}

/// A client frame (masked, RFC 6455 §5.3) with a fixed key.
func maskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
    let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
    var frame: [UInt8] = [(fin ? 0x80 : 0) | opcode]
    if payload.count < 126 {
        frame.append(0x80 | UInt8(payload.count))
    } else {
        frame.append(0x80 | 126)
        frame.append(UInt8(payload.count >> 8))
        frame.append(UInt8(payload.count & 0xFF))
    }
    frame += key
    for (index, byte) in payload.enumerated() { frame.append(byte ^ key[index % 4]) }
    return frame
}

/// A server frame as received: (fin+opcode byte, payload), or nil if incomplete or masked.
func parseServerFrame(_ bytes: [UInt8]) -> (first: UInt8, payload: [UInt8])? {
    guard bytes.count >= 2, bytes[1] & 0x80 == 0 else { return nil }
    var length = Int(bytes[1] & 0x7F)
    var offset = 2
    if length == 126 {
        guard bytes.count >= 4 else { return nil }
        length = Int(bytes[2]) << 8 | Int(bytes[3])
        offset = 4
    } else if length == 127 {
        return nil
    }
    guard bytes.count >= offset + length else { return nil }
    return (bytes[0], Array(bytes[offset..<(offset + length)]))
}

/// A valid upgrade request for `path`, with `extra` header lines and the option to drop some.
func upgradeRequest(
    path: String = "/ws",
    method: String = "GET",
    version: String = "HTTP/1.1",
    dropping: Set<String> = [],
    replacing: [String: String] = [:],
    extra: [String] = []
) -> String {
    let defaults: [(String, String)] = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    var text = "\(method) \(path) \(version)\r\n"
    for (name, value) in defaults where !dropping.contains(name) {
        text += "\(name): \(replacing[name] ?? value)\r\n"
    }
    for line in extra { text += line + "\r\n" }
    return text + "\r\n"
}
