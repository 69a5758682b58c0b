import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import WebSocketClient
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO
import WebSocketServer

// Shared fixtures of the end-to-end and client tests: our server with echo routes, and a scripted raw peer.

/// What an end-to-end test needs from a running `Server`.
struct EchoServer: Sendable {
    let server: Server
    /// Close statuses seen by the server's async routes, in order.
    let serverCloses: NIOLockedValueBox<[CloseStatus]>

    var port: Int { self.server.port }

    func url(_ path: String = "/echo") -> String {
        "ws://127.0.0.1:\(self.port)\(path)"
    }

    /// Runs `body` with a server on 127.0.0.1 (ephemeral port), then shuts it down gracefully. Routes:
    /// - `/echo`: delegate-API echo (the fast path, as ws-echo);
    /// - `/async-echo`: async-API echo, records the final close status;
    /// - `/close-me`: sends close 4001 "server says bye" at once, records the final status;
    /// - `/burst`: sends `burstCount` binary messages of 64 KiB numbered in their first 4 bytes, then closes 1000.
    static func with<Result: Sendable>(
        configuration: WebSocketConfiguration = .init(),
        tls: TLSConfiguration? = nil,
        burstCount: Int = 200,
        _ body: @Sendable (EchoServer) async throws -> Result
    ) async throws -> Result {
        let closes = NIOLockedValueBox<[CloseStatus]>([])
        let routes = [
            WebSocketRoute(path: "/echo", handler: .delegate { _ in EndToEndEcho() }),
            WebSocketRoute(
                path: "/async-echo",
                shouldUpgrade: { request, _ in
                    .accept(subprotocol: request.subprotocols.first)
                },
                handler: .async { ws, _ in
                    for await message in ws.messages {
                        try? await ws.send(message.kind, message.payload)
                    }
                    let status = await ws.closeStatus
                    closes.withLockedValue { $0.append(status) }
                }
            ),
            WebSocketRoute(
                path: "/close-me",
                handler: .async { ws, _ in
                    let status = await ws.close(code: CloseCode(4001), reason: "server says bye")
                    closes.withLockedValue { $0.append(status) }
                }
            ),
            WebSocketRoute(
                path: "/burst",
                handler: .async { ws, _ in
                    for index in 0..<burstCount {
                        var payload = ws.channel.allocator.buffer(capacity: 65536)
                        payload.writeInteger(UInt32(index))
                        payload.writeRepeatingByte(UInt8(truncatingIfNeeded: index), count: 65536 - 4)
                        do {
                            try await ws.send(binary: payload)
                        } catch {
                            return
                        }
                    }
                    await ws.close()
                }
            ),
        ]
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls, webSocket: configuration),
            routes: routes
        )
        return try await server.withRunning { server in
            try await body(EchoServer(server: server, serverCloses: closes))
        }
    }

    /// Waits (up to 5 s) until the server recorded `count` close statuses and returns them.
    func waitForServerCloses(_ count: Int) async -> [CloseStatus] {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while clock.now < deadline {
            let seen = self.serverCloses.withLockedValue { $0 }
            if seen.count >= count { return seen }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return self.serverCloses.withLockedValue { $0 }
    }
}

/// The callback-API echo of the `/echo` route.
struct EndToEndEcho: WebSocketDelegate {
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        try? webSocket.send(kind, copying: payload)
    }
}

/// Deterministic test payloads.
func testPayload(_ count: Int, seed: UInt8 = 7) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(count)
    var value = seed
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes in
        for index in 0..<count {
            value = value &* 31 &+ 11
            bytes[index] = value
        }
        return count
    }
    return buffer
}

/// Runs `body` with a timeout, failing the test instead of hanging.
func withTimeout<T: Sendable>(
    _ duration: Duration = .seconds(30),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: duration)
            return nil
        }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            throw EndToEndTimeout()
        }
        group.cancelAll()
        return value
    }
}

struct EndToEndTimeout: Error {}

/// A raw TCP peer that plays a scripted server: it reads the client's request head, then writes whatever
/// `respond` returns for the request's `Sec-WebSocket-Key` (a 101 plus frames, a bad answer...), and then
/// stays silent: it never reads a frame nor answers a ping. Records what it received after the head.
final class ScriptedPeer: Sendable {
    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let respond: @Sendable (_ key: String, _ head: String) -> [UInt8]
        let closeAfterResponse: Bool
        let state = NIOLockedValueBox<(head: [UInt8], answered: Bool, after: [UInt8])>(([], false, []))

        init(closeAfterResponse: Bool, respond: @escaping @Sendable (String, String) -> [UInt8]) {
            self.closeAfterResponse = closeAfterResponse
            self.respond = respond
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(self.unwrapInboundIn(data).readableBytesView)
            let reply: [UInt8]? = self.state.withLockedValue { state in
                if state.answered {
                    state.after += bytes
                    return nil
                }
                state.head += bytes
                let text = String(decoding: state.head, as: UTF8.self)
                guard text.contains("\r\n\r\n") else { return nil }
                state.answered = true
                let key =
                    text.split(separator: "\r\n")
                    .first { $0.lowercased().hasPrefix("sec-websocket-key:") }
                    .map { String($0.dropFirst("sec-websocket-key:".count)).trimmingCharacters() } ?? ""
                return self.respond(key, text)
            }
            if let reply, !reply.isEmpty {
                let written = context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: reply)))
                if self.closeAfterResponse {
                    written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                }
            }
        }
    }

    private let channel: any Channel
    private let handlers: NIOLockedValueBox<[Handler]>

    var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Bytes the client sent after its request head, over all connections.
    var receivedAfterHead: [UInt8] {
        self.handlers.withLockedValue { $0.flatMap { $0.state.withLockedValue { $0.after } } }
    }

    private init(channel: any Channel, handlers: NIOLockedValueBox<[Handler]>) {
        self.channel = channel
        self.handlers = handlers
    }

    static func start(
        closeAfterResponse: Bool = false,
        respond: @escaping @Sendable (_ key: String, _ head: String) -> [UInt8]
    ) async throws -> ScriptedPeer {
        let handlers = NIOLockedValueBox<[Handler]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let handler = Handler(closeAfterResponse: closeAfterResponse, respond: respond)
                handlers.withLockedValue { $0.append(handler) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ScriptedPeer(channel: channel, handlers: handlers)
    }

    /// A valid 101 for `key`, with extra header lines.
    static func switchingProtocols(key: String, extraHeaders: String = "") -> [UInt8] {
        Array(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(OpeningHandshake.acceptValue(forKey: key))\r\n\(extraHeaders)\r\n")
                .utf8
        )
    }

    /// An unmasked server frame.
    static func frame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, maskKey: [UInt8]? = nil)
        -> [UInt8]
    {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if payload.count < 126 {
            bytes.append(maskBit | UInt8(payload.count))
        } else {
            bytes.append(maskBit | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        if let maskKey {
            bytes += maskKey
            bytes += payload.enumerated().map { $0.element ^ maskKey[$0.offset % 4] }
        } else {
            bytes += payload
        }
        return bytes
    }

    func stop() async {
        try? await self.channel.close()
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" {
            slice = slice.dropLast()
        }
        return String(slice)
    }
}
