import Benchmark
import NIOCore
import NIOWebSocket
import WebSocketCore

// Every group runs WebSocketCore ("ours") and its SwiftNIO NIOWebSocket counterpart ("nio") on the same bytes, in
// the same process and run, so that ratios hold even on a noisy machine. Names are
// `Group.case.xBatch.implementation`: one iteration processes the whole batch (`xN` frames or buffers), and
// `report.py` turns iterations/s into frames/s and bytes/s. Names contain no `/` or space because the benchmark
// tool maps each name to a file name under `Thresholds/`.
//
// Thresholds (checked by `swift package benchmark thresholds check` and `baseline check`, see BENCHMARKS.md):
// our parse and encode paths must allocate nothing (`mallocCountTotal` exactly 0 at every percentile), and our NIO
// handler's echo path (`EchoNIO.swift`) must allocate exactly what its thresholds files record.

let frameSizes = [16, 125, 1024, 64 << 10, 1 << 20]

/// Frames per iteration: about 64 KiB of payload for small frames (amortises the harness's per-iteration cost and
/// stays in L2), one frame for 64 KiB and 1 MiB.
func batchCount(_ size: Int) -> Int {
    switch size {
    case ..<64: return 1024
    case ..<512: return 512
    case ..<4096: return 64
    default: return 1
    }
}

/// Tolerances for `swift package benchmark baseline check`: throughput and wall clock (p50) may move 25% either
/// way (the machine this was written on is shared; use a quiet machine for tighter A/B work). Without an entry the
/// tool applies 5% at p25, p50 and p75.
var tolerances: [BenchmarkMetric: BenchmarkThresholds] {
    [.throughput: .init(relative: [.p50: 25]), .wallClock: .init(relative: [.p50: 25])]
}

/// The zero-allocation claim of the parse, encode, masking and UTF-8 paths: `mallocCountTotal` must be exactly 0 at
/// every percentile, in `baseline check` and against the committed `Thresholds/*.p90.json` in `thresholds check`.
var noAllocations: [BenchmarkMetric: BenchmarkThresholds] {
    tolerances.merging(
        [.mallocCountTotal: .init(absolute: [.p0: 0, .p25: 0, .p50: 0, .p75: 0, .p90: 0, .p99: 0, .p100: 0])]
    ) { $1 }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        maxDuration: .milliseconds(800),
        maxIterations: 1_000_000,
        thresholds: tolerances
    )
    parseBenchmarks()
    encodeBenchmarks()
    maskingBenchmarks()
    utf8Benchmarks()
    echoStreamBenchmarks()
    echoNIOBenchmarks()
}

// MARK: - Parse

/// Masked client frames, parsed in place. Binary frames: parsing a buffer again re-masks its payloads (XOR is an
/// involution), which is the same work, so no restore is needed between iterations.
func parseBenchmarks() {
    for size in frameSizes {
        let batch = batchCount(size)
        let wire = Wire.binaryFrames(size: size, count: batch)
        checkNIODecodes(wire, frames: batch, payloadBytes: size * batch)
        let storage = Storage(copying: wire.bytes)
        let nioInput = ByteBuffer(copying: UnsafeRawBufferPointer(storage.bytes))
        let name = "Parse.\(sizeName(size)).x\(batch)"
        let parserConfiguration = FrameParser.Configuration(role: .server)

        Benchmark("\(name).ours-FrameParser", configuration: .init(thresholds: noAllocations)) { benchmark in
            for _ in benchmark.scaledIterations {
                var parser = FrameParser(configuration: parserConfiguration)
                var offset = 0
                var frames = 0
                let buffer = storage.bytes
                while offset < buffer.count {
                    let (consumed, item) = try! parser.parse(UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
                    offset += consumed
                    if case .frame = item { frames += 1 }
                }
                precondition(frames == batch)
            }
        }

        let connection = Box(Connection(role: .server))
        Benchmark("\(name).ours-Connection", configuration: .init(thresholds: noAllocations)) { benchmark in
            for _ in benchmark.scaledIterations {
                var messages = 0
                try! connection.value.receive(storage.bytes) { _, event in
                    if case .message(.binary, let payload) = event {
                        messages += 1
                        blackHole(payload.count)
                    }
                }
                precondition(messages == batch)
            }
        }

        let decode = NIODecoderPeer(work: .none)
        Benchmark("\(name).nio-decode") { benchmark in
            for _ in benchmark.scaledIterations {
                decode.receive(nioInput)
            }
        }

        let decodeUnmask = NIODecoderPeer(work: .unmask)
        Benchmark("\(name).nio-decode+unmask") { benchmark in
            for _ in benchmark.scaledIterations {
                decodeUnmask.receive(nioInput)
            }
        }
    }
}

/// Start-up check: NIO's decoder sees the same frames in our fixture, with the same unmasked payload size.
func checkNIODecodes(_ wire: Wire, frames: Int, payloadBytes: Int) {
    let peer = NIODecoderPeer(work: .unmask)
    let input = wire.bytes.withUnsafeBytes { ByteBuffer(copying: $0) }
    peer.receive(input)
    precondition(peer.sink.frames == frames && peer.sink.payloadBytes == payloadBytes, "fixture mismatch")
}

// MARK: - Encode

/// Server frames: the header is written, the payload goes out by reference (ours: a header in caller storage for
/// a vectored write; NIO: `WebSocketFrameEncoder` writes a separate header buffer, the payload buffer being shared).
func encodeBenchmarks() {
    let framesPerIteration = 1000
    for size in frameSizes {
        let name = "Encode.\(sizeName(size)).x\(framesPerIteration)"
        // One header slot per frame, as for a writev of many frames.
        let headers = Storage(count: framesPerIteration * FrameEncoder.maxHeaderLength)

        Benchmark("\(name).ours-FrameEncoder", configuration: .init(thresholds: noAllocations)) { benchmark in
            for _ in benchmark.scaledIterations {
                var written = 0
                for i in 0..<framesPerIteration {
                    let slot = UnsafeMutableRawBufferPointer(
                        rebasing: headers.bytes[(i * FrameEncoder.maxHeaderLength)...])
                    written &+= FrameEncoder.writeHeader(FrameHeader(opcode: .binary, payloadLength: size), into: slot)
                }
                blackHole(written)
            }
        }

        let connection = Box(Connection(role: .server))
        Benchmark("\(name).ours-Connection", configuration: .init(thresholds: noAllocations)) { benchmark in
            for _ in benchmark.scaledIterations {
                var written = 0
                for i in 0..<framesPerIteration {
                    let slot = UnsafeMutableRawBufferPointer(
                        rebasing: headers.bytes[(i * FrameEncoder.maxHeaderLength)...])
                    let header = try! connection.value.makeFrameHeader(.binary, payloadLength: size, fin: true)
                    written &+= FrameEncoder.writeHeader(header, into: slot)
                }
                blackHole(written)
            }
        }

        var payload = ByteBufferAllocator().buffer(capacity: size)
        payload.writeRepeatingByte(0x61, count: size)
        let sharedPayload = payload
        let encoder = NIOEncoderPeer()
        Benchmark("\(name).nio-encoder") { benchmark in
            for _ in benchmark.scaledIterations {
                for _ in 0..<framesPerIteration {
                    encoder.send(WebSocketFrame(fin: true, opcode: .binary, data: sharedPayload))
                }
            }
            blackHole(encoder.sink.bytes)
        }
    }
}

// MARK: - Masking

/// Masking alone, in place, in cache. Unaligned: the buffer starts one byte after a 64-byte boundary.
func maskingBenchmarks() {
    let key = MaskKey(0x37, 0xFA, 0x21, 0x3D)
    let nioKey: WebSocketMaskingKey = [0x37, 0xFA, 0x21, 0x3D]
    for size in frameSizes {
        let repeats = max(1, (64 << 10) / size)
        for misalignment in [0, 1] {
            let alignment = misalignment == 0 ? "aligned" : "unaligned"
            let name = "Mask.\(sizeName(size))_\(alignment).x\(repeats)"
            let storage = Storage(count: size + 64)
            var rng = Bytes(seed: 7)
            rng.fill(storage.bytes)

            Benchmark("\(name).ours-Masking", configuration: .init(thresholds: noAllocations)) { benchmark in
                // Derived from `storage` here, so that the closure keeps the storage alive.
                let region = UnsafeMutableRawBufferPointer(
                    rebasing: storage.bytes[misalignment..<(misalignment + size)])
                for _ in benchmark.scaledIterations {
                    for _ in 0..<repeats { Masking.apply(key, to: region) }
                }
            }

            var buffer = ByteBufferAllocator().buffer(capacity: size + 64)
            buffer.writeBytes(UnsafeRawBufferPointer(storage.bytes))
            buffer.moveReaderIndex(forwardBy: misalignment)
            buffer.moveWriterIndex(to: misalignment + size)
            let nioBuffer = Box(buffer)
            Benchmark("\(name).nio-webSocketMask") { benchmark in
                for _ in benchmark.scaledIterations {
                    for _ in 0..<repeats { nioBuffer.value.webSocketMask(nioKey) }
                }
            }
        }
    }
}

// MARK: - UTF-8

/// Whole-message validation of 64 KiB (in cache). Peer: the standard library's `String(validating:as:)`, which also
/// builds the `String` (a copy): it is the validation a Swift application gets without WebSocketCore.
func utf8Benchmarks() {
    let size = 64 << 10
    let corpora: [(String, [UInt8], Bool)] = [
        ("ascii", Corpus.ascii(count: size), true),
        ("mixed", Corpus.mixed(count: size), true),
        ("invalid-at-end", Corpus.invalidAtEnd(count: size), false),
    ]
    for (label, bytes, valid) in corpora {
        let storage = Storage(copying: bytes)
        precondition(UTF8Validator.isValid(UnsafeRawBufferPointer(storage.bytes)) == valid)
        precondition((String(validating: bytes, as: UTF8.self) != nil) == valid)
        let name = "UTF8.\(label)_\(sizeName(size)).x1"

        Benchmark("\(name).ours-UTF8Validator", configuration: .init(thresholds: noAllocations)) { benchmark in
            let input = UnsafeRawBufferPointer(storage.bytes)
            for _ in benchmark.scaledIterations {
                blackHole(UTF8Validator.isValid(input))
            }
        }
        Benchmark("\(name).stdlib-String(validating:)") { benchmark in
            let input = UnsafeRawBufferPointer(storage.bytes)
            for _ in benchmark.scaledIterations {
                blackHole(String(validating: input.assumingMemoryBound(to: UInt8.self), as: UTF8.self))
            }
        }
    }
}

// MARK: - Connection on echo traffic

/// A client's side of echo traffic as a server receives it, cut into socket-sized reads.
struct EchoStream {
    let name: String
    let wire: Wire
    let messages: Int
    let readSize: Int

    /// Many small text and binary messages (16-512 bytes), in 16 KiB reads: most frames arrive whole, the
    /// ones straddling a read boundary are reassembled.
    static func smallMessages() -> EchoStream {
        var rng = Bytes(seed: 11)
        let text = Corpus.mixed(count: 4096)
        var wire = Wire()
        for i in 0..<2048 {
            let length = 16 + Int(rng.next() % 497)
            if i % 2 == 0 {
                // Text: a slice of the mixed corpus that ends on a character boundary.
                var end = length
                while end < text.count && text[end] & 0xC0 == 0x80 { end += 1 }
                wire.append(FrameSpec(opcode: .text, fin: true, payload: Array(text[0..<end])), masked: true, rng: &rng)
            } else {
                var payload = [UInt8](repeating: 0, count: length)
                payload.withUnsafeMutableBytes { rng.fill($0) }
                wire.append(FrameSpec(opcode: .binary, fin: true, payload: payload), masked: true, rng: &rng)
            }
        }
        return EchoStream(name: "small_messages.x\(wire.frames)", wire: wire, messages: wire.frames, readSize: 16 << 10)
    }

    /// Four 256 KiB text messages, each in 16 fragments of 16 KiB, in 64 KiB reads: reassembled (one copy) and
    /// validated incrementally (fragments split code points).
    static func largeFragmented() -> EchoStream {
        var rng = Bytes(seed: 13)
        let text = Corpus.mixed(count: 256 << 10)
        var wire = Wire()
        for _ in 0..<4 {
            for fragment in 0..<16 {
                let chunk = Array(text[(fragment * (16 << 10))..<((fragment + 1) * (16 << 10))])
                let opcode: Opcode = fragment == 0 ? .text : .continuation
                wire.append(FrameSpec(opcode: opcode, fin: fragment == 15, payload: chunk), masked: true, rng: &rng)
            }
        }
        return EchoStream(name: "large_fragmented.x4", wire: wire, messages: 4, readSize: 64 << 10)
    }
}

/// `Connection.receive` vs NIO's decoder + `NIOWebSocketFrameAggregator` + unmask + UTF-8 validation of text.
/// Each iteration restores the masked input first (outside the measurement): our parser unmasks in place.
func echoStreamBenchmarks() {
    for stream in [EchoStream.smallMessages(), EchoStream.largeFragmented()] {
        let pristine = Storage(copying: stream.wire.bytes)
        let work = Storage(count: pristine.count)
        let reads = stride(from: 0, to: pristine.count, by: stream.readSize).map {
            $0..<min($0 + stream.readSize, pristine.count)
        }
        let messageCount = stream.messages
        let name = "Receive.\(stream.name)"

        let connection = Box(Connection(role: .server))
        Benchmark("\(name).ours-Connection") { benchmark in
            work.bytes.copyMemory(from: UnsafeRawBufferPointer(pristine.bytes))
            benchmark.startMeasurement()
            var messages = 0
            for read in reads {
                try! connection.value.receive(UnsafeMutableRawBufferPointer(rebasing: work.bytes[read])) { _, event in
                    if case .message(_, let payload) = event {
                        messages += 1
                        blackHole(payload.count)
                    }
                }
            }
            benchmark.stopMeasurement()
            precondition(messages == messageCount)
        }

        let input = ByteBuffer(copying: UnsafeRawBufferPointer(pristine.bytes))
        let slices = reads.map { input.getSlice(at: $0.lowerBound, length: $0.count)! }
        let peer = NIODecoderPeer(work: .unmaskAndValidate, aggregate: true)
        Benchmark("\(name).nio-decode+aggregate+unmask+validate") { benchmark in
            let before = peer.sink.frames
            for slice in slices { peer.receive(slice) }
            precondition(peer.sink.frames - before == messageCount && peer.sink.invalid == 0)
        }
    }
}
