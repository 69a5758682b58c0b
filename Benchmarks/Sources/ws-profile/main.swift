import WebSocketCore

#if canImport(Glibc)
    import Glibc
#endif

// ws-profile: the microbenchmarks' hot loops as a plain program, for `valgrind --tool=callgrind` (instruction
// counts are repeatable on a noisy machine) and `perf record`. Usage: ws-profile MODE [REPEATS]
//   parse SIZE     FrameParser over 1024 masked binary frames of SIZE bytes
//   receive SIZE   Connection.receive over the same frames
//   mask SIZE      Masking.apply on SIZE bytes
//   utf8-ascii, utf8-mixed   UTF8Validator.isValid on 64 KiB

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: ws-profile parse|receive|mask SIZE [REPEATS] | utf8-ascii|utf8-mixed [REPEATS]")
    exit(2)
}
let mode = arguments[1]
let size = arguments.count > 2 ? Int(arguments[2]) ?? 16 : 16
let repeats = arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000

func frames(size: Int, count: Int) -> UnsafeMutableRawBufferPointer {
    let frameLength = FrameHeader.headerLength(payloadLength: size, masked: true) + size
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: frameLength * count, alignment: 64)
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    for i in 0..<count {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1
        let key = MaskKey(
            UInt8(truncatingIfNeeded: seed >> 32), UInt8(truncatingIfNeeded: seed >> 40),
            UInt8(truncatingIfNeeded: seed >> 48), UInt8(truncatingIfNeeded: seed >> 56))
        let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[(i * frameLength)..<((i + 1) * frameLength)])
        let headerLength = FrameEncoder.writeHeader(
            FrameHeader(opcode: .binary, maskKey: key, payloadLength: size),
            into: slot)
        for j in headerLength..<frameLength { slot[j] = UInt8(truncatingIfNeeded: j &* 31) }
    }
    return buffer
}

func text(mixed: Bool) -> UnsafeMutableRawBufferPointer {
    let piece = Array((mixed ? "naïve café 日本語 😀 ascii " : "the quick brown fox jumps over ").utf8)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
    var i = 0
    while i + piece.count <= buffer.count {
        for b in piece {
            buffer[i] = b
            i += 1
        }
    }
    while i < buffer.count {
        buffer[i] = 0x20
        i += 1
    }
    return buffer
}

var checksum = 0
switch mode {
case "parse":
    let buffer = frames(size: size, count: 1024)
    for _ in 0..<repeats {
        var parser = FrameParser(configuration: .init(role: .server))
        var offset = 0
        while offset < buffer.count {
            let (consumed, item) = try! parser.parse(UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
            offset += consumed
            if case .frame(_, let range) = item { checksum &+= range.count }
        }
    }
case "receive":
    let buffer = frames(size: size, count: 1024)
    var connection = Connection(role: .server)
    for _ in 0..<repeats {
        try! connection.receive(buffer) { _, event in
            if case .message(_, let payload) = event { checksum &+= payload.count }
        }
    }
case "mask":
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
    buffer.initializeMemory(as: UInt8.self, repeating: 0x5A)
    for i in 0..<repeats { checksum &+= Masking.apply(MaskKey(1, 2, 3, UInt8(truncatingIfNeeded: i)), to: buffer) }
case "utf8-ascii", "utf8-mixed":
    let buffer = text(mixed: mode == "utf8-mixed")
    for _ in 0..<repeats where UTF8Validator.isValid(UnsafeRawBufferPointer(buffer)) { checksum &+= 1 }
default:
    print("unknown mode \(mode)")
    exit(2)
}
print("\(mode) \(size) x\(repeats): checksum \(checksum)")
