import Testing
import WebSocketCore
import WebSocketTestSupport

@Suite("UTF-8 validation (RFC 6455 §8.1, RFC 3629)")
struct UTF8ValidatorTests {
    /// Independent reference built on the standard library's decoder: nil when valid, .incomplete when the
    /// input is a valid prefix cut short, else the index of the first byte that makes it invalid.
    enum Reference: Equatable { case valid, incomplete, invalid(at: Int) }

    static func reference(_ bytes: [UInt8]) -> Reference {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var position = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar):
                position += scalar.count
            case .emptyInput:
                return .valid
            case .error(let length):
                let lead = bytes[position]
                let leadIsValid = (0xC2...0xF4).contains(lead)
                if !leadIsValid { return .invalid(at: position) }
                if position + length >= bytes.count { return .incomplete }
                return .invalid(at: position + length)
            }
        }
    }

    static func validate(_ bytes: [UInt8], chunks: [Int] = []) -> Reference {
        var validator = UTF8Validator()
        var position = 0
        var index = 0
        while position < bytes.count {
            let size = chunks.isEmpty ? bytes.count : chunks[index % chunks.count]
            index += 1
            let end = min(bytes.count, position + max(1, size))
            let bad = bytes.withUnsafeBytes { validator.validate(UnsafeRawBufferPointer(rebasing: $0[position..<end])) }
            if let bad { return .invalid(at: position + bad) }
            position = end
        }
        return validator.isComplete ? .valid : .incomplete
    }

    @Test("Autobahn-style vectors fail at the first invalid byte", arguments: [
        ("", Reference.valid),
        ("48656c6c6f", .valid),
        ("cebae1bdb9cf83cebcceb5", .valid),  // κόσμε
        ("cebae1bdb9cf83cebcceb5eda080656469746564", .invalid(at: 12)),  // surrogate U+D800 after κόσμε
        ("f0908080", .valid),  // U+10000
        ("f48fbfbf", .valid),  // U+10FFFF
        ("f4908080", .invalid(at: 1)),  // > U+10FFFF
        ("f5", .invalid(at: 0)),
        ("fe", .invalid(at: 0)),
        ("ff", .invalid(at: 0)),
        ("c080", .invalid(at: 0)),  // overlong NUL
        ("c1bf", .invalid(at: 0)),
        ("e08080", .invalid(at: 1)),  // overlong
        ("e09fbf", .invalid(at: 1)),
        ("f08fbfbf", .invalid(at: 1)),  // overlong 4-byte
        ("eda080", .invalid(at: 1)),  // U+D800
        ("edbfbf", .invalid(at: 1)),  // U+DFFF
        ("ed9fbf", .valid),  // U+D7FF
        ("ee8080", .valid),  // U+E000
        ("80", .invalid(at: 0)),  // lone continuation
        ("41bf", .invalid(at: 1)),
        ("c2", .incomplete),
        ("e282", .incomplete),
        ("f09080", .incomplete),
        ("c241", .invalid(at: 1)),
        ("f88888888888", .invalid(at: 0)),  // 5-byte form
        ("fc8484848484", .invalid(at: 0)),  // 6-byte form
        ("efbfbf", .valid),  // U+FFFF noncharacter is valid UTF-8
    ])
    func vectors(input: String, expected: Reference) {
        let bytes = hex(input)
        #expect(Self.reference(bytes) == expected, "reference disagrees with the vector")
        #expect(Self.validate(bytes) == expected)
        for size in 1...4 { #expect(Self.validate(bytes, chunks: [size]) == expected) }
    }

    @Test("agrees with the standard library on random and adversarial input split at every byte")
    func agreesWithStandardLibrary() {
        var rng = SeededGenerator(seed: 8_1_1)
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        for round in 0..<3000 {
            let length = Int.random(in: 0...40, using: &rng)
            var bytes: [UInt8]
            switch round % 3 {
            case 0: bytes = (0..<length).map { _ in interesting.randomElement(using: &rng)! }
            case 1: bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                // Valid text with one byte possibly mutated.
                let scalars = (0..<length).compactMap { _ in Unicode.Scalar(UInt32.random(in: 0...0x10FFFF, using: &rng)) }
                bytes = Array(String(String.UnicodeScalarView(scalars)).utf8)
                if !bytes.isEmpty && Bool.random(using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = interesting.randomElement(using: &rng)!
                }
            }
            let expected = Self.reference(bytes)
            let stdlibValid = String(validating: bytes, as: UTF8.self) != nil
            #expect((expected == .valid) == stdlibValid)
            #expect(Self.validate(bytes) == expected, "\(hexString(bytes))")
            for cut in 0...bytes.count {
                #expect(Self.validate(bytes, chunks: [max(1, cut), bytes.count]) == expected, "\(hexString(bytes)) cut \(cut)")
            }
        }
    }

    @Test("the ASCII fast path finds an invalid byte at every position of a long ASCII run")
    func asciiFastPath() {
        for position in 0..<100 {
            var bytes = [UInt8](repeating: 0x61, count: 100)
            bytes[position] = 0xFF
            #expect(Self.validate(bytes) == .invalid(at: position))
            #expect(Self.validate(bytes, chunks: [7]) == .invalid(at: position))
        }
        #expect(Self.validate([UInt8](repeating: 0x7F, count: 1000)) == .valid)
    }
}
