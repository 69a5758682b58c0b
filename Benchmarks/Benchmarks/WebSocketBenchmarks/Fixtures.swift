import NIOCore
import WebSocketCore

/// A deterministic byte source (xorshift64*) so that every run measures the same bytes.
struct Bytes {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: next() >> 32) }
    }

    mutating func maskKey() -> MaskKey {
        let word = next()
        return MaskKey(
            UInt8(truncatingIfNeeded: word), UInt8(truncatingIfNeeded: word >> 8),
            UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 24))
    }
}

/// Owned, 64-byte aligned raw storage that lives for the whole benchmark process.
final class Storage: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    init(copying source: [UInt8]) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        source.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }

    var count: Int { bytes.count }
}

/// One frame in a fixture: header fields and unmasked payload.
struct FrameSpec {
    var opcode: Opcode
    var fin: Bool
    var payload: [UInt8]
}

/// Wire bytes of client (masked) or server (unmasked) frames, built with a fixed seed.
///
/// The fixture is encoded with `FrameEncoder` and `Masking`, and checked at start-up against NIOWebSocket's
/// decoder (see `NIOPeers.swift`), so a bug in our encoder cannot make both sides measure wrong input.
struct Wire {
    var bytes: [UInt8] = []
    var frames = 0
    var payloadBytes = 0

    mutating func append(_ frame: FrameSpec, masked: Bool, rng: inout Bytes) {
        let key = masked ? rng.maskKey() : nil
        let header = FrameHeader(fin: frame.fin, opcode: frame.opcode, maskKey: key, payloadLength: frame.payload.count)
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: header.headerLength + frame.payload.count))
        bytes.withUnsafeMutableBytes { raw in
            let slot = UnsafeMutableRawBufferPointer(rebasing: raw[start...])
            let headerLength = FrameEncoder.writeHeader(header, into: slot)
            let payload = UnsafeMutableRawBufferPointer(rebasing: slot[headerLength...])
            frame.payload.withUnsafeBytes { payload.copyMemory(from: $0) }
            if let key { Masking.apply(key, to: payload) }
        }
        frames += 1
        payloadBytes += frame.payload.count
    }

    /// `count` masked binary frames of `size` random bytes each.
    static func binaryFrames(size: Int, count: Int, masked: Bool = true, seed: UInt64 = 0x5EED) -> Wire {
        var rng = Bytes(seed: seed &+ UInt64(size))
        var wire = Wire()
        var payload = [UInt8](repeating: 0, count: size)
        for _ in 0..<count {
            payload.withUnsafeMutableBytes { rng.fill($0) }
            wire.append(FrameSpec(opcode: .binary, fin: true, payload: payload), masked: masked, rng: &rng)
        }
        return wire
    }
}

/// UTF-8 corpora for the validator benchmarks.
enum Corpus {
    /// Printable ASCII prose.
    static func ascii(count: Int) -> [UInt8] {
        let words = [
            "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "WebSocket", "frame", "42,", "RFC.",
        ]
        var out: [UInt8] = []
        out.reserveCapacity(count + 16)
        var i = 0
        while out.count < count {
            out.append(contentsOf: words[i % words.count].utf8)
            out.append(i % 11 == 10 ? 0x0A : 0x20)
            i += 1
        }
        return Array(out.prefix(count))
    }

    /// Latin-1 supplement, CJK and emoji mixed with ASCII: 1, 2, 3 and 4-byte sequences.
    static func mixed(count: Int) -> [UInt8] {
        let pieces = ["naïve café ", "Grüße, Ørsted ", "日本語のテキスト ", "中文字符 ", "emoji 😀🚀👍🏽 ", "ascii words here "]
        var out: [UInt8] = []
        out.reserveCapacity(count + 32)
        var i = 0
        while true {
            let piece = Array(pieces[i % pieces.count].utf8)
            if out.count + piece.count > count { break }
            out.append(contentsOf: piece)
            i += 1
        }
        while out.count < count { out.append(0x20) }
        return out
    }

    /// ASCII with one invalid byte (0xFF) as the very last byte: the validator must scan everything.
    static func invalidAtEnd(count: Int) -> [UInt8] {
        var out = ascii(count: count)
        out[count - 1] = 0xFF
        return out
    }
}

/// A mutable value shared between a benchmark's setup and its closure (benchmarks run one at a time); it may be
/// noncopyable (`Connection`).
final class Box<Value: ~Copyable>: @unchecked Sendable {
    var value: Value
    init(_ value: consuming Value) { self.value = value }
}

extension ByteBuffer {
    init(copying bytes: UnsafeRawBufferPointer) {
        self = ByteBufferAllocator().buffer(capacity: bytes.count)
        self.writeBytes(bytes)
    }
}

/// Human-readable sizes for benchmark names.
func sizeName(_ size: Int) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 { return "\(size >> 20)MiB" }
    if size >= 1 << 10 && size % (1 << 10) == 0 { return "\(size >> 10)KiB" }
    return "\(size)B"
}
