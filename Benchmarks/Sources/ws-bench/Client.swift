import BenchSupport
import WebSocketCore

#if canImport(Glibc)
    import Glibc
#endif

/// Counters shared by all connections of one run.
final class Stats {
    var measuring = false
    var sending = true
    var messages = 0
    var payloadBytes = 0
    var latencies: [UInt64] = []

    init() { latencies.reserveCapacity(1 << 20) }
}

/// One load connection: a send queue with up to `inFlight` messages, a frame parser for the echoes, and the
/// send times of the messages in flight (echoes come back in order).
final class Peer {
    let fd: Int32
    let options: Options
    let pattern: UnsafeRawPointer
    let stats: Stats
    private var parser = FrameParser(configuration: .init(role: .client, maxFramePayloadLength: 64 << 20))
    private let salt: UInt64

    // Receive side.
    private var receivedSequence: UInt64 = 0
    private var messageOffset = 0
    private var rawLength: UInt32 = 0
    private var rawLengthBytes = 0
    private var rawRemaining = 0

    // Send side.
    private let sendBuffer: UnsafeMutableRawPointer
    private let sendCapacity: Int
    private var head = 0
    private var tail = 0
    private var sentSequence: UInt64 = 0
    private let sendTimes: UnsafeMutablePointer<UInt64>
    private var keys: UInt64
    var wantsWritable = false

    init(fd: Int32, index: Int, options: Options, pattern: UnsafeRawPointer, stats: Stats) {
        self.fd = fd
        self.options = options
        self.pattern = pattern
        self.stats = stats
        salt = UInt64(index) << 40
        keys = 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
        sendCapacity = options.inFlight * (options.size + FrameEncoder.maxHeaderLength) + 64
        sendBuffer = UnsafeMutableRawPointer.allocate(byteCount: sendCapacity, alignment: 64)
        sendTimes = UnsafeMutablePointer<UInt64>.allocate(capacity: options.inFlight)
    }

    deinit {
        sendBuffer.deallocate()
        sendTimes.deallocate()
    }

    /// Queues one message: header (WebSocket: masked binary frame; raw: 4-byte length) and payload, whose first
    /// 8 bytes carry a per-connection sequence tag so that lost, duplicated or reordered echoes are caught.
    func enqueue(now: UInt64) {
        let size = options.size
        let need = FrameEncoder.maxHeaderLength + size
        if tail + need > sendCapacity {
            (sendBuffer).copyMemory(from: sendBuffer + head, byteCount: tail - head)
            tail -= head
            head = 0
        }
        let slot = UnsafeMutableRawBufferPointer(start: sendBuffer + tail, count: need)
        var headerLength: Int
        var key: MaskKey? = nil
        switch options.mode {
        case .webSocket:
            keys ^= keys << 13
            keys ^= keys >> 7
            keys ^= keys << 17
            key = MaskKey(
                UInt8(truncatingIfNeeded: keys), UInt8(truncatingIfNeeded: keys >> 8),
                UInt8(truncatingIfNeeded: keys >> 16), UInt8(truncatingIfNeeded: keys >> 24))
            headerLength = FrameEncoder.writeHeader(
                FrameHeader(opcode: options.text ? .text : .binary, maskKey: key, payloadLength: size), into: slot)
        case .raw:
            slot.storeBytes(of: UInt32(size).bigEndian, as: UInt32.self)
            headerLength = 4
        }
        let payload = UnsafeMutableRawBufferPointer(rebasing: slot[headerLength..<(headerLength + size)])
        payload.copyMemory(from: UnsafeRawBufferPointer(start: pattern, count: size))
        for i in 0..<8 { payload[i] = tagByte(sentSequence ^ salt, i) }
        if let key { Masking.apply(key, to: payload) }
        tail += headerLength + size
        sendTimes[Int(sentSequence % UInt64(options.inFlight))] = now
        sentSequence += 1
    }

    /// Writes as much queued output as the socket takes; returns whether the epoll interest must change.
    func flush() -> Bool {
        while head < tail {
            let n = write(fd, sendBuffer + head, tail - head)
            if n > 0 {
                head += n
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                fail("write: \(errnoText())")
            }
        }
        if head == tail {
            head = 0
            tail = 0
        }
        let wants = head < tail
        defer { wantsWritable = wants }
        return wants != wantsWritable
    }

    /// Consumes `count` received bytes at `base`: verifies every payload byte and completes messages.
    func receive(_ base: UnsafeMutableRawPointer, count: Int, now: UInt64) {
        switch options.mode {
        case .webSocket: receiveFrames(UnsafeMutableRawBufferPointer(start: base, count: count), now: now)
        case .raw: receiveRaw(base, count: count, now: now)
        }
    }

    private func receiveFrames(_ buffer: UnsafeMutableRawBufferPointer, now: UInt64) {
        var offset = 0
        while offset < buffer.count {
            let start = offset
            let parsed: (consumed: Int, item: FrameParser.Item?)
            do {
                parsed = try parser.parse(UnsafeMutableRawBufferPointer(rebasing: buffer[start...]))
            } catch {
                fail("protocol error from server: \(error)")
            }
            offset += parsed.consumed
            guard let item = parsed.item else { break }
            switch item {
            case .frame(let header, let range):
                check(header)
                verify(buffer.baseAddress! + start + range.lowerBound, count: range.count)
                complete(now: now)
            case .header(let header):
                check(header)
                messageOffset = 0
            case .payload(let range, let isFinal):
                verify(buffer.baseAddress! + start + range.lowerBound, count: range.count)
                messageOffset += range.count
                if isFinal { complete(now: now) }
            }
        }
    }

    private func check(_ header: FrameHeader) {
        guard header.opcode == (options.text ? .text : .binary), header.fin, header.payloadLength == options.size else {
            fail("unexpected frame from server: \(header.opcode) fin=\(header.fin) length=\(header.payloadLength)")
        }
        messageOffset = 0
    }

    private func receiveRaw(_ base: UnsafeMutableRawPointer, count: Int, now: UInt64) {
        var offset = 0
        while offset < count {
            if rawRemaining == 0 {
                while rawLengthBytes < 4 && offset < count {
                    rawLength = rawLength << 8 | UInt32(base.load(fromByteOffset: offset, as: UInt8.self))
                    rawLengthBytes += 1
                    offset += 1
                }
                guard rawLengthBytes == 4 else { break }
                guard rawLength == UInt32(options.size) else { fail("raw echo: bad length \(rawLength)") }
                rawRemaining = options.size
                rawLength = 0
                rawLengthBytes = 0
                messageOffset = 0
            }
            let take = min(rawRemaining, count - offset)
            verify(base + offset, count: take)
            messageOffset += take
            rawRemaining -= take
            offset += take
            if rawRemaining == 0 { complete(now: now) }
        }
    }

    /// Byte `i` (0-7) of a message's sequence tag: the tag's bytes for binary messages; for text, one of 16 ASCII
    /// letters per 4 bits (the low 32 bits of the tag), so that the payload stays valid UTF-8.
    @inline(__always)
    private func tagByte(_ tag: UInt64, _ i: Int) -> UInt8 {
        options.text
            ? UInt8(ascii: "A") + UInt8(truncatingIfNeeded: (tag >> UInt64(4 * i)) & 0xF)
            : UInt8(truncatingIfNeeded: tag >> UInt64(8 * i))
    }

    /// Compares a chunk at `messageOffset` of the current message with what was sent.
    private func verify(_ bytes: UnsafeRawPointer, count: Int) {
        var i = 0
        let tag = receivedSequence ^ salt
        while i < count && messageOffset + i < 8 {
            let expected = tagByte(tag, messageOffset + i)
            guard bytes.load(fromByteOffset: i, as: UInt8.self) == expected else {
                fail("echo mismatch in sequence tag of message \(receivedSequence) on fd \(fd)")
            }
            i += 1
        }
        if i < count && memcmp(bytes + i, pattern + messageOffset + i, count - i) != 0 {
            fail("echo mismatch in payload of message \(receivedSequence) at offset \(messageOffset + i) on fd \(fd)")
        }
    }

    private func complete(now: UInt64) {
        let sentAt = sendTimes[Int(receivedSequence % UInt64(options.inFlight))]
        receivedSequence += 1
        if stats.measuring {
            stats.messages += 1
            stats.payloadBytes += options.size
            stats.latencies.append(now &- sentAt)
        }
        if stats.sending { enqueue(now: now) }
    }
}
