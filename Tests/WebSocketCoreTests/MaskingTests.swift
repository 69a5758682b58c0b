import Testing
import WebSocketCore
import WebSocketTestSupport

@Suite("Masking (RFC 6455 §5.3)")
struct MaskingTests {
    static func reference(_ key: MaskKey, _ bytes: [UInt8], offset: Int) -> [UInt8] {
        bytes.enumerated().map { $0.element ^ key[offset + $0.offset] }
    }

    @Test("equals the byte-by-byte definition for every length 0-300, key offset and alignment")
    func matchesReference() {
        var rng = SeededGenerator(seed: 0x6455)
        let key = MaskKey(0x12, 0x34, 0x56, 0x78)
        var storage = [UInt8](repeating: 0, count: 300 + 16)
        for length in 0...300 {
            for offset in 0..<4 {
                for alignment in [0, 1, 3, 7, 8, 13] {
                    let input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    storage.replaceSubrange(alignment..<(alignment + length), with: input)
                    let next = storage.withUnsafeMutableBytes { raw in
                        Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: raw[alignment..<(alignment + length)]),
                                      keyOffset: offset)
                    }
                    #expect(Array(storage[alignment..<(alignment + length)]) == Self.reference(key, input, offset: offset),
                            "length \(length) offset \(offset) alignment \(alignment)")
                    #expect(next == (offset + length) % 4)
                }
            }
        }
    }

    @Test("masking in pieces with the rolling key offset equals masking at once")
    func splitsCompose() {
        var rng = SeededGenerator(seed: 42)
        let key = MaskKey(0xA1, 0x00, 0xFF, 0x5C)
        for _ in 0..<200 {
            let length = Int.random(in: 0...2000, using: &rng)
            let input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var pieces = input
            var cut = 0
            var offset = 0
            while cut < length {
                let size = min(length - cut, Int.random(in: 1...97, using: &rng))
                offset = pieces.withUnsafeMutableBytes { raw in
                    Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: raw[cut..<(cut + size)]), keyOffset: offset)
                }
                cut += size
            }
            #expect(pieces == Self.reference(key, input, offset: 0))
        }
    }

    @Test("masking twice restores the input; the RFC 6455 §5.7 example unmasks to Hello")
    func involutionAndRFCExample() {
        var bytes: [UInt8] = [0x7f, 0x9f, 0x4d, 0x51, 0x58]
        bytes.withUnsafeMutableBytes { _ = Masking.apply(MaskKey(0x37, 0xfa, 0x21, 0x3d), to: $0) }
        #expect(bytes == Array("Hello".utf8))
        bytes.withUnsafeMutableBytes { _ = Masking.apply(MaskKey(0x37, 0xfa, 0x21, 0x3d), to: $0) }
        #expect(bytes == [0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    @Test("an empty buffer is a no-op that keeps the offset")
    func empty() {
        let result = Masking.apply(MaskKey(1, 2, 3, 4), to: UnsafeMutableRawBufferPointer(start: nil, count: 0), keyOffset: 6)
        #expect(result == 2)
    }
}
