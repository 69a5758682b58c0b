import NIOCore
import NIOEmbedded
import Testing
import WebSocketCore
import WebSocketTestSupport

@testable import WebSocketNIO

/// Set from a future's callback (the embedded event loop runs it on this thread).
private final class Flag: @unchecked Sendable {
    var value = false
}

/// Echoes every message with `send(_:copying:)`, as ws-echo does.
private struct CopyingEcho: WebSocketDelegate {
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        try? webSocket.send(kind, copying: payload)
    }
}

@Suite("WebSocketHandler: one write per read; buffers kept while busy, released when idle")
struct HandlerBufferTests {
    private static func makeChannel(inPlace: Bool) throws -> (EmbeddedChannel, WebSocketHandler) {
        let channel = EmbeddedChannel()
        var configuration = WebSocketConfiguration()
        configuration.unmasksInReceivedBuffer = inPlace
        let context = try channel.pipeline.syncOperations.addWebSocketDelegate(
            role: .server,
            configuration: configuration,
            delegate: CopyingEcho()
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (channel, context.handler)
    }

    private static func writes(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var writes: [[UInt8]] = []
        while let out = try channel.readOutbound(as: ByteBuffer.self) {
            writes.append(Array(out.readableBytesView))
        }
        return writes
    }

    @Test("the answers to the messages of one read leave in one write, in order", arguments: [true, false])
    func oneWritePerRead(inPlace: Bool) throws {
        let (channel, _) = try Self.makeChannel(inPlace: inPlace)
        let wire =
            maskedFrame(.binary, [1, 2, 3]) + maskedFrame(.text, Array("hi".utf8)) + maskedFrame(.ping, [9])
            + maskedFrame(.binary, [4])
        try channel.writeInbound(ByteBuffer(bytes: wire))
        let writes = try Self.writes(channel)
        #expect(writes.count == 1)
        #expect(
            writes.first
                == unmaskedFrame(.binary, [1, 2, 3]) + unmaskedFrame(.text, Array("hi".utf8))
                + unmaskedFrame(.pong, [9]) + unmaskedFrame(.binary, [4])
        )
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a send with a promise during a read completes once written")
    func promiseInsideARead() throws {
        let channel = EmbeddedChannel()
        let written = channel.eventLoop.makePromise(of: Void.self)
        let succeeded = Flag()
        written.futureResult.whenSuccess { succeeded.value = true }
        let delegate = WebSocketClosureDelegate(onMessage: { webSocket, kind, payload in
            try? webSocket.send(kind, copying: payload)
            try? webSocket.send(kind, copying: payload, promise: written)
        })
        _ = try channel.pipeline.syncOperations.addWebSocketDelegate(role: .server, delegate: delegate)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.binary, [5])))
        #expect(succeeded.value)
        let expected = unmaskedFrame(.binary, [5]) + unmaskedFrame(.binary, [5])
        #expect(try Self.writes(channel).joined().elementsEqual(expected))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a message joined from several reads is echoed from the buffer it was joined in, without a copy")
    func joinedMessageEchoedWithoutCopy() throws {
        let (channel, handler) = try Self.makeChannel(inPlace: true)
        let payload = seededBytes(100_000)
        let wire = maskedFrame(.binary, Array(payload[..<40_000]), fin: false)
            + maskedFrame(.continuation, Array(payload[40_000...]))
        for start in stride(from: 0, to: wire.count, by: 30_000) {
            try channel.writeInbound(ByteBuffer(bytes: wire[start..<min(start + 30_000, wire.count)]))
        }
        var writes: [ByteBuffer] = []
        while let out = try channel.readOutbound(as: ByteBuffer.self) { writes.append(out) }
        #expect(writes.map { Array($0.readableBytesView) }.joined().elementsEqual(unmaskedFrame(.binary, payload)))
        let joined = try #require(handler.buffers.message)
        #expect(writes.count == 2)
        #expect(
            writes.last?.withUnsafeReadableBytes { $0.baseAddress }
                == joined.withUnsafeReadableBytes { $0.baseAddress }
        )
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("large buffers are kept while messages flow and released after a second without any")
    func largeBuffersReleasedWhenIdle() throws {
        let (channel, handler) = try Self.makeChannel(inPlace: false)
        let payload = seededBytes(200_000)
        let wire = maskedFrame(.binary, payload)
        func sendMessage() throws {
            for start in stride(from: 0, to: wire.count, by: 65_536) {
                try channel.writeInbound(ByteBuffer(bytes: wire[start..<min(start + 65_536, wire.count)]))
            }
            #expect(try Self.writes(channel).joined().elementsEqual(unmaskedFrame(.binary, payload)))
        }
        func holdsBuffers() -> Bool {
            (handler.buffers.message?.capacity ?? 0) >= 200_000 && handler.buffers.readScratch != nil
        }
        try sendMessage()
        #expect(holdsBuffers())

        // Busy: a message every 600 ms keeps them.
        for _ in 0..<3 {
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
            try sendMessage()
            #expect(holdsBuffers())
        }
        // Idle: released within two release periods, and allocated again on demand.
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(handler.buffers.message == nil)
        #expect(handler.buffers.readScratch == nil)
        #expect(handler.buffers.outputBuffer == nil)
        #expect(handler.buffers.releaseTimer == nil)
        #expect(handler.connection.bufferCapacity == 0)
        try sendMessage()
        #expect(holdsBuffers())
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test(
        "a fragmented message survives idle pauses between its fragments (Autobahn 5.19)",
        arguments: [true, false]
    )
    func pauseBetweenFragmentsKeepsTheMessage(inPlace: Bool) throws {
        let (channel, handler) = try Self.makeChannel(inPlace: inPlace)
        let fragments = (1...5).map { Array("fragment\($0)".utf8) }
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.text, fragments[0], fin: false)))
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.continuation, fragments[1], fin: false)))
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.ping, Array("pongme 1!".utf8))))
        #expect(try Self.writes(channel).joined().elementsEqual(unmaskedFrame(.pong, Array("pongme 1!".utf8))))
        // Longer than two release periods: the read scratch may go, the message being joined must stay.
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(handler.buffers.releaseTimer == nil)
        for fragment in fragments[2...3] {
            try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.continuation, fragment, fin: false)))
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.continuation, fragments[4])))
        #expect(try Self.writes(channel).joined().elementsEqual(unmaskedFrame(.text, Array(fragments.joined()))))
        // Once the message is complete, an idle connection releases its buffers again.
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(handler.buffers.message == nil)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a large copied send reuses its buffer once written")
    func sendBufferReused() throws {
        let (channel, handler) = try Self.makeChannel(inPlace: true)
        let context = WebSocketDelegateContext(handler: handler, channel: channel)
        let payload = seededBytes(5_000)
        var addresses: [UnsafeRawPointer?] = []
        for _ in 0..<2 {
            try payload.withUnsafeBytes { try context.send(.binary, copying: $0) }
            let out = try #require(try channel.readOutbound(as: ByteBuffer.self))
            #expect(Array(out.readableBytesView) == unmaskedFrame(.binary, payload))
            addresses.append(out.withUnsafeReadableBytes { UnsafeRawPointer($0.baseAddress) })
        }
        #expect(addresses[0] == addresses[1])
        #expect(handler.buffers.sendBuffer != nil)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("an idle connection arms no timer and holds no buffer")
    func idleConnectionHoldsNothing() throws {
        let (channel, handler) = try Self.makeChannel(inPlace: true)
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(.binary, [1])))
        _ = try Self.writes(channel)
        #expect(handler.buffers.releaseTimer == nil)
        #expect(handler.buffers.outputBuffer == nil)
        #expect(handler.connection.bufferCapacity == 0)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test(
        "the gathered answers to a read and the header of a frame sent by reference reuse one buffer once written",
        arguments: [10, 100_000]
    )
    func outputBufferReused(payloadLength: Int) throws {
        // A private copy of each read: the read scratch is kept, so the connection is busy with buffers.
        let (channel, handler) = try Self.makeChannel(inPlace: false)
        func echo(_ payloads: [[UInt8]]) throws -> [ByteBuffer] {
            let wire = payloads.flatMap { maskedFrame(.binary, $0) }
            for start in stride(from: 0, to: wire.count, by: 65_536) {
                try channel.writeInbound(ByteBuffer(bytes: wire[start..<min(start + 65_536, wire.count)]))
            }
            var writes: [ByteBuffer] = []
            while let out = try channel.readOutbound(as: ByteBuffer.self) { writes.append(out) }
            let expected = payloads.flatMap { unmaskedFrame(.binary, $0) }
            #expect(writes.map { Array($0.readableBytesView) }.joined().elementsEqual(expected))
            return writes
        }
        // Twenty small messages in one read: their answers leave in one buffer of about the read's length, kept
        // once the connection holds buffers (from the second read on).
        let many = Array(repeating: seededBytes(100), count: 20)
        _ = try echo(many)
        // (Only its capacity is kept here: a reference would keep the handler from reusing it.)
        let batchCapacity = try #require(try echo(many).first?.capacity)
        #expect(batchCapacity >= 2_000)
        // The next read's answer (small: its batch; large: the header written before the payload buffer) goes into
        // that buffer: a fresh one would have the capacity of a 10-byte batch or a 14-byte header.
        let payload = seededBytes(payloadLength)
        #expect(try echo([payload]).first?.capacity ?? 0 >= batchCapacity)
        #expect(handler.buffers.outputBuffer != nil)
        // A buffer still held by the channel is not reused: its bytes stay as they were written.
        let held = try echo([payload])
        let heldBytes = held.map { Array($0.readableBytesView) }
        _ = try echo([seededBytes(payloadLength, seed: 9)])
        #expect(held.map { Array($0.readableBytesView) } == heldBytes)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
