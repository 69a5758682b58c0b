import Testing
import WebSocketCore
import WebSocketTestSupport

@Suite("Connection: buffer memory kept between messages and released when idle")
struct ConnectionBufferTests {
    /// A 1 MiB + 1 byte message in two frames, so that it is reassembled.
    static let bigMessage = unmaskedFrame(.binary, [UInt8](repeating: 7, count: 1 << 20), fin: false)
        + unmaskedFrame(.continuation, [1])

    @Test("a raised retainedReassemblyCapacity keeps the reassembly buffer for the next message")
    func largeBufferIsKept() {
        var connection = Connection(role: .client)
        connection.retainedReassemblyCapacity = 4 << 20
        #expect(connection.feed(Self.bigMessage).events.count == 1)
        #expect(connection.feed(unmaskedFrame(.binary, [2])).events == [.message(.binary, [2])])
        // Kept (the default would have cut it back to 64 KiB at this call), and reused without growing.
        let kept = connection.bufferCapacity
        #expect(kept > 1 << 20)
        #expect(connection.feed(Self.bigMessage).events.count == 1)
        #expect(connection.bufferCapacity == kept)
    }

    @Test("the default still cuts the reassembly buffer back to 64 KiB")
    func defaultReleases() {
        var connection = Connection(role: .client)
        #expect(connection.retainedReassemblyCapacity == 64 << 10)
        #expect(connection.feed(Self.bigMessage).events.count == 1)
        #expect(connection.feed(unmaskedFrame(.binary, [2])).events == [.message(.binary, [2])])
        #expect(connection.bufferCapacity <= (64 << 10) + 2 * 128)
    }

    @Test("releaseBuffers frees idle buffers and keeps a message being reassembled")
    func releaseBuffers() {
        var connection = Connection(role: .client)
        connection.retainedReassemblyCapacity = 4 << 20
        #expect(connection.feed(Self.bigMessage + unmaskedFrame(.ping, [1, 2])).events.count == 2)
        #expect(connection.bufferCapacity > 1 << 20)
        connection.withPendingOutput { _ in }  // the pong
        connection.releaseBuffers()
        #expect(connection.bufferCapacity == 0)

        // In the middle of a fragmented message: its bytes stay, and the message completes intact.
        #expect(connection.feed(unmaskedFrame(.text, [0x61, 0x62], fin: false)).events.isEmpty)
        connection.releaseBuffers()
        #expect(connection.bufferCapacity > 0)
        #expect(connection.feed(unmaskedFrame(.continuation, [0x63])).events == [.message(.text, [0x61, 0x62, 0x63])])
        connection.releaseBuffers()
        #expect(connection.bufferCapacity == 0)
        // Buffers come back on demand.
        #expect(connection.feed(Self.bigMessage).events.count == 1)
    }
}
