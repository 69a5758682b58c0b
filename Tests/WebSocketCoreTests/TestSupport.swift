import WebSocketCore

// Helpers of the core tests alone. The shared ones (frame builders, seeded generator, hex, `OwnedEvent`,
// `Outcome`, `Connection.feed`, `closePayload`) live in the target WebSocketTestSupport.

/// Parses a stream of frames (as the receiving `role`) into (header, payload) pairs, feeding the given chunks.
func parseAll(
    _ bytes: [UInt8], role: Role, chunks: [Int] = [], configuration: FrameParser.Configuration? = nil
) throws(ProtocolError) -> [(FrameHeader, [UInt8])] {
    var parser = FrameParser(configuration: configuration ?? FrameParser.Configuration(role: role))
    var frames: [(FrameHeader, [UInt8])] = []
    var pending: (FrameHeader, [UInt8])? = nil
    var input = bytes
    var position = 0
    var chunkIndex = 0
    var caught: ProtocolError? = nil
    while position < input.count && caught == nil {
        let size = chunks.isEmpty ? input.count : max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(input.count, position + size)
        input.withUnsafeMutableBytes { raw in
            var offset = position
            while offset <= end {
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])
                do throws(ProtocolError) {
                    let (consumed, item) = try parser.parse(slice)
                    let base = offset
                    offset += consumed
                    guard let item else { break }
                    switch item {
                    case .frame(let header, let range):
                        frames.append((header, Array(raw[(base + range.lowerBound)..<(base + range.upperBound)])))
                    case .header(let header):
                        pending = (header, [])
                    case .payload(let range, let isFinal):
                        pending?.1 += raw[(base + range.lowerBound)..<(base + range.upperBound)]
                        if isFinal, let p = pending {
                            frames.append(p)
                            pending = nil
                        }
                    }
                } catch {
                    caught = error
                    break
                }
            }
        }
        position = end
    }
    if let caught { throw caught }
    return frames
}
