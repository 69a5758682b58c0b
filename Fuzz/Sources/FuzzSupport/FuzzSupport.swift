import WebSocketCore

/// The signature of `LLVMFuzzerTestOneInput`.
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback
) -> CInt

/// Runs libFuzzer's driver. SwiftPM links executables with `main` aliased to `<Module>_main`, so each target
/// defines that symbol and calls this, instead of relying on libFuzzer's own `main`.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ callback: FuzzCallback
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

/// Reads structure (choices, sizes) from the front of a fuzz input; returns zeros once exhausted.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    }

    public var isExhausted: Bool { position >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, count))
        defer { position = end }
        return Array(bytes[position..<end])
    }

    public mutating func rest() -> [UInt8] { take(bytes.count - position) }
}

/// Stops the process with a message: an invariant was violated (libFuzzer reports it as a crash).
public func violated(_ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("invariant violated: \(message())", file: file, line: line)
}

/// Chunk sizes derived from one byte, for splitting input in ways the fuzzer controls.
public func chunkSizes(_ seed: UInt8) -> [Int] {
    switch seed % 8 {
    case 0: return []  // all at once
    case 1: return [1]
    case 2: return [2, 3]
    case 3: return [7]
    case 4: return [1, 13, 2]
    case 5: return [14, 1]
    case 6: return [Int(seed >> 3) + 1]
    default: return [3, Int(seed) + 1]
    }
}

/// A parsed frame stream, owned, for comparisons.
public struct ParsedStream: Equatable {
    public var frames: [FrameHeader] = []
    public var payloads: [[UInt8]] = []
    public var error: ProtocolError? = nil
    public init() {}
}

/// Parses `input` with a parser of `configuration`, fed in the given chunk sizes (cycled; all at once when
/// empty). Checks the invariants that hold for every item: ranges lie inside the buffer given, headers respect
/// the limit, partial payloads add up to the header's length.
public func parseStream(_ input: [UInt8], _ configuration: FrameParser.Configuration, chunks: [Int]) -> ParsedStream {
    var parser = FrameParser(configuration: configuration)
    var stream = ParsedStream()
    var bytes = input
    var position = 0
    var chunkIndex = 0
    var pending: (FrameHeader, [UInt8])? = nil
    outer: while position < bytes.count {
        let size = chunks.isEmpty ? bytes.count : max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(bytes.count, position + size)
        var stop = false
        bytes.withUnsafeMutableBytes { raw in
            var offset = position
            while true {
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])
                let result: (consumed: Int, item: FrameParser.Item?)
                do throws(ProtocolError) {
                    result = try parser.parse(slice)
                } catch {
                    stream.error = error
                    stop = true
                    return
                }
                if result.consumed < 0 || result.consumed > slice.count { violated("consumed \(result.consumed) of \(slice.count)") }
                let base = offset
                offset += result.consumed
                guard let item = result.item else {
                    if offset != end { violated("no item but \(end - offset) bytes left unconsumed") }
                    return
                }
                switch item {
                case .frame(let header, let range):
                    if range.lowerBound < 0 || range.upperBound > slice.count || range.count != header.payloadLength {
                        violated("payload range \(range) outside buffer of \(slice.count) or length mismatch")
                    }
                    check(header, configuration)
                    stream.frames.append(header)
                    stream.payloads.append(Array(raw[(base + range.lowerBound)..<(base + range.upperBound)]))
                case .header(let header):
                    check(header, configuration)
                    if pending != nil || header.payloadLength == 0 { violated("header while a payload is pending") }
                    pending = (header, [])
                case .payload(let range, let isFinal):
                    guard var current = pending else { violated("payload without header") }
                    if range.isEmpty || range.upperBound > slice.count { violated("bad payload chunk \(range)") }
                    current.1 += raw[(base + range.lowerBound)..<(base + range.upperBound)]
                    if current.1.count > current.0.payloadLength { violated("payload longer than header says") }
                    if isFinal != (current.1.count == current.0.payloadLength) { violated("isFinal mismatch") }
                    if isFinal {
                        stream.frames.append(current.0)
                        stream.payloads.append(current.1)
                        pending = nil
                    } else {
                        pending = current
                    }
                }
            }
        }
        position = end
        if stop { break outer }
    }
    return stream
}

private func check(_ header: FrameHeader, _ configuration: FrameParser.Configuration) {
    if header.payloadLength > configuration.maxFramePayloadLength { violated("frame above the limit accepted") }
    if header.opcode.isControl && (header.payloadLength > 125 || !header.fin) { violated("bad control frame accepted") }
    if (header.maskKey != nil) != (configuration.role == .server) { violated("masking rule not enforced") }
    if header.reservedBits.rawValue & ~configuration.claimedReservedBits.rawValue != 0 { violated("RSV not enforced") }
}
