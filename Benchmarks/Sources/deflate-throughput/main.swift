// permessage-deflate throughput beside the uncompressed path, in one run (RFC 7692 codec on the system zlib).
//
//   swift run -c release deflate-throughput [repetitions]
//
// For each payload (text-like and random binary; 1 KiB, 64 KiB, 1 MiB) it measures, on the same bytes:
//   plain    - server Connection.send + client Connection.receive, no extension (copy + frame + parse)
//   compress - server Connection.send with PerMessageDeflateCodec (deflate level 6, window 15)
//   inflate  - client Connection.receive of that compressed frame (inflate + UTF-8 check for text)
// and prints MB/s of message bytes (1 MB = 10^6 bytes), the median of the repetitions, and the compression ratio.
import WebSocketCore
import WebSocketDeflate

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func nanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func textPayload(_ count: Int) -> [UInt8] {
    let words = ["the", "websocket", "frame", "message", "deflate", "context", "window", "server", "client", "ping"]
    var state: UInt64 = 42
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + 16)
    while bytes.count < count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        bytes += Array(words[Int(state >> 33) % words.count].utf8) + [0x20]
    }
    return Array(bytes.prefix(count))
}

func binaryPayload(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Receives every frame in `wire` on `receiver` and returns the number of message bytes delivered.
func receiveAll(_ receiver: inout Connection, _ wire: inout [UInt8]) -> Int {
    var delivered = 0
    wire.withUnsafeMutableBytes { raw in
        do throws(ProtocolError) {
            try receiver.receive(raw) { _, event in
                if case .message(_, let payload) = event { delivered += payload.count }
            }
        } catch {
            fatalError("receive failed: \(error)")
        }
    }
    return delivered
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

let repetitions = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5 : 5
print("payload            size     plain MB/s  compress MB/s  inflate MB/s  compressed/original")
for (name, make, kind) in [("text", textPayload, MessageKind.text), ("binary(random)", binaryPayload, .binary)] {
    for size in [1 << 10, 64 << 10, 1 << 20] {
        // Each message is a different window of a larger buffer, so that repeated identical messages do not
        // turn into back-references to the previous one (context takeover would make that nearly free).
        let base = make(size + 64 * 4099)
        let messages = (0..<64).map { Array(base[($0 * 4099)..<($0 * 4099 + size)]) }
        let count = max(4, (32 << 20) / size)  // about 32 MB of messages per measurement
        var plain: [Double] = []
        var compress: [Double] = []
        var inflate: [Double] = []
        var ratio = 0.0
        for _ in 0..<repetitions {
            // Plain path.
            var server = Connection(role: .server)
            var client = Connection(role: .client)
            var start = nanoseconds()
            for index in 0..<count {
                messages[index % 64].withUnsafeBytes { try? server.send(kind, $0) }
                var wire = server.withPendingOutput { Array($0) }
                _ = receiveAll(&client, &wire)
            }
            plain.append(Double(size * count) / Double(nanoseconds() - start) * 1e3)

            // Compressed path: encode all messages, then inflate them (context takeover in both).
            var deflateServer = Connection(role: .server, codec: PerMessageDeflateCodec(role: .server, parameters: .init()))
            var inflateClient = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
            var frames: [[UInt8]] = []
            frames.reserveCapacity(count)
            start = nanoseconds()
            for index in 0..<count {
                messages[index % 64].withUnsafeBytes { try? deflateServer.send(kind, $0) }
                frames.append(deflateServer.withPendingOutput { Array($0) })
            }
            compress.append(Double(size * count) / Double(nanoseconds() - start) * 1e3)
            ratio = Double(frames.reduce(0) { $0 + $1.count }) / Double(size * count)
            start = nanoseconds()
            var delivered = 0
            for index in frames.indices { delivered += receiveAll(&inflateClient, &frames[index]) }
            inflate.append(Double(size * count) / Double(nanoseconds() - start) * 1e3)
            precondition(delivered == size * count, "inflated \(delivered) of \(size * count) bytes")
        }
        let sizeLabel = size >= 1 << 20 ? "\(size >> 20) MiB" : "\(size >> 10) KiB"
        print(
            padded(name, 17) + "  " + padded(sizeLabel, 8) + " " + padded("\(Int(median(plain)))", 11)
                + padded("\(Int(median(compress)))", 15) + padded("\(Int(median(inflate)))", 14)
                + "\(Double(Int(ratio * 1000)) / 1000)")
    }
}
