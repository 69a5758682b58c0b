import CZlib
import WebSocketCore

/// The permessage-deflate ``MessageCodec`` for one connection (RFC 7692 §7.2), on the system zlib.
///
/// Give it to `Connection(role:configuration:codec:)` after negotiation. It compresses whole messages sent with
/// `Connection.send(_:_:encode:)` (RSV1 set; messages shorter than
/// ``PerMessageDeflate/Configuration/minimumMessageLength`` go uncompressed) and inflates received messages that
/// carry RSV1, stopping with 1009 as soon as the inflated size passes the connection's message limit: a
/// decompression bomb costs at most that limit plus one byte of output, whatever its compressed size.
///
/// Context takeover: when the agreed parameters say that an endpoint resets its context after each message, the
/// matching zlib stream is freed after each message, so an idle connection holds no zlib memory for it.
/// ``allocatedBytes`` reports what zlib currently holds.
///
/// A window of 8 bits: zlib cannot compress raw DEFLATE with a 256-byte window (it silently uses 512), which a
/// peer limited to 8 bits might not decode. When our agreed window is 8, the compressor uses zlib's `Z_RLE`
/// strategy, whose matches are all at distance 1, so any window can decode its output.
///
/// A class: it owns two zlib streams whose windows carry over between messages, so there is exactly one of
/// each per connection. Give one codec to one `Connection` and do not use it elsewhere.
///
/// Sizes: messages of any length are compressed and inflated (zlib is fed at most `UInt32.max` bytes per call),
/// and a message limit of `Int.max` means no limit.
public final class PerMessageDeflateCodec: MessageCodec {
    private let compressor: ZStream
    private let decompressor: ZStream
    private let minimumMessageLength: Int

    /// Creates the codec for our side of a connection.
    ///
    /// - Parameters:
    ///   - role: our role; it decides which agreed window and context-takeover rule applies to which direction.
    ///   - parameters: what the negotiation agreed.
    ///   - configuration: compression level, memory level and size threshold (the negotiation fields are not
    ///     read here).
    public init(
        role: Role,
        parameters: PerMessageDeflate.Parameters,
        configuration: PerMessageDeflate.Configuration = PerMessageDeflate.Configuration()
    ) {
        let ourWindow = role == .server ? parameters.serverMaxWindowBits : parameters.clientMaxWindowBits
        let ourReset = role == .server ? parameters.serverNoContextTakeover : parameters.clientNoContextTakeover
        let peerWindow = role == .server ? parameters.clientMaxWindowBits : parameters.serverMaxWindowBits
        let peerReset = role == .server ? parameters.clientNoContextTakeover : parameters.serverNoContextTakeover
        compressor = ZStream(
            kind: .deflate(
                level: Int32(min(9, max(0, configuration.compressionLevel))),
                memoryLevel: Int32(min(9, max(1, configuration.memoryLevel))),
                runLengthOnly: ourWindow <= 8),
            windowBits: Int32(max(9, min(15, ourWindow))),
            freesBetweenMessages: ourReset)
        // Decoding with a larger window than the peer uses is always safe; 9 is zlib's smallest for raw inflate
        // that accepts every stream a 256-byte window produces.
        decompressor = ZStream(kind: .inflate, windowBits: Int32(max(9, min(15, peerWindow))), freesBetweenMessages: peerReset)
        minimumMessageLength = max(0, configuration.minimumMessageLength)
    }

    /// The most bytes handed to zlib in one call, input or output (zlib counts in 32 bits). Tests lower it to
    /// exercise the slicing of large messages on small ones.
    var zlibSliceLimit: Int {
        get { compressor.sliceLimit }
        set {
            compressor.sliceLimit = max(1, newValue)
            decompressor.sliceLimit = max(1, newValue)
        }
    }

    /// Bytes zlib holds right now for this connection (compressor and decompressor), measured through zlib's
    /// allocation hooks.
    public var allocatedBytes: Int { compressor.allocatedBytes + decompressor.allocatedBytes }

    public func decode(
        _ chunk: UnsafeRawBufferPointer,
        isFinal: Bool,
        limit: Int,
        output: (UnsafeRawBufferPointer) throws(ProtocolError) -> Void
    ) throws(ProtocolError) {
        try decompressor.inflate(chunk, limit: limit, output: output)
        if isFinal {
            // RFC 7692 §7.2.2: append 0x00 0x00 0xff 0xff to the message's payload, then inflate.
            let tail: (UInt8, UInt8, UInt8, UInt8) = (0x00, 0x00, 0xFF, 0xFF)
            try withUnsafeBytes(of: tail) { raw -> Result<Void, ProtocolError> in
                Result { () throws(ProtocolError) in try decompressor.inflate(raw, limit: limit, output: output) }
            }.get()
            decompressor.endMessage()
        }
    }

    public func encode(
        _ message: UnsafeRawBufferPointer,
        kind: MessageKind,
        body: (UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        guard message.count >= minimumMessageLength else { return false }
        guard let compressed = compressor.deflateMessage(message) else { return false }
        defer { compressor.endMessage() }
        // Without context takeover nothing of this message stays in the compressor, so a message that does not
        // shrink can go out as it is. With context takeover the peer's window must see it: send it compressed.
        if compressor.freesBetweenMessages && compressed.count >= message.count { return false }
        body(compressed)
        return true
    }
}

/// A zlib stream (raw DEFLATE) with counted allocations, created lazily.
final class ZStream {
    enum Kind {
        case deflate(level: Int32, memoryLevel: Int32, runLengthOnly: Bool)
        case inflate
    }

    private let kind: Kind
    private let windowBits: Int32
    let freesBetweenMessages: Bool
    private var stream = z_stream()
    private var initialized = false
    /// Bytes currently allocated by zlib for this stream.
    fileprivate(set) var allocatedBytes = 0
    /// Output buffer: inflate output chunks, or a whole compressed message.
    private var buffer: UnsafeMutableRawPointer? = nil
    private var bufferCapacity = 0
    private static let inflateChunk = 16 << 10
    /// The most bytes handed to zlib in one call (`avail_in` and `avail_out` are 32-bit).
    var sliceLimit = Int(UInt32.max)

    init(kind: Kind, windowBits: Int32, freesBetweenMessages: Bool) {
        self.kind = kind
        self.windowBits = windowBits
        self.freesBetweenMessages = freesBetweenMessages
    }

    deinit {
        end()
    }

    private func start() -> Bool {
        if initialized { return true }
        stream = z_stream()
        stream.zalloc = zlibAllocate
        stream.zfree = zlibFree
        stream.opaque = Unmanaged.passUnretained(self).toOpaque()
        let status: Int32
        switch kind {
        case .deflate(let level, let memoryLevel, let runLengthOnly):
            status = czlib_deflate_init2(&stream, level, -windowBits, memoryLevel, runLengthOnly ? Z_RLE : Z_DEFAULT_STRATEGY)
        case .inflate:
            status = czlib_inflate_init2(&stream, -windowBits)
        }
        initialized = status == Z_OK
        return initialized
    }

    private func end() {
        if initialized {
            switch kind {
            case .deflate: deflateEnd(&stream)
            case .inflate: inflateEnd(&stream)
            }
            initialized = false
        }
        buffer?.deallocate()
        buffer = nil
        bufferCapacity = 0
    }

    /// After a message: drop the context (and its memory) when context takeover is off.
    func endMessage() {
        if freesBetweenMessages {
            end()
        } else if bufferCapacity > 64 << 10 {
            buffer?.deallocate()
            buffer = nil
            bufferCapacity = 0
        }
    }

    private func reserve(_ capacity: Int) -> UnsafeMutableRawPointer {
        if let buffer, bufferCapacity >= capacity { return buffer }
        let newBuffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if let buffer {
            newBuffer.copyMemory(from: buffer, byteCount: bufferCapacity)
            buffer.deallocate()
        }
        buffer = newBuffer
        bufferCapacity = capacity
        return newBuffer
    }

    /// Inflates `input`, handing output to `output` in chunks of at most 16 KiB; throws 1009 once the message's
    /// output would pass `limit` (counted by the caller's `output`, which throws), and 1007 on corrupt data.
    /// Input of any size is fed to zlib in slices of at most ``sliceLimit`` bytes.
    func inflate(
        _ input: UnsafeRawBufferPointer,
        limit: Int,
        output: (UnsafeRawBufferPointer) throws(ProtocolError) -> Void
    ) throws(ProtocolError) {
        guard input.count > 0, let inputBase = input.baseAddress else { return }
        guard start() else { throw ProtocolError.invalidCompressedData.with(reason: "zlib could not start inflating") }
        // Output room for at most one byte past the limit: enough to see it passed (`limit + 1` is only computed
        // for a small limit, so `Int.max` cannot overflow).
        let needed = limit < Self.inflateChunk ? max(1, limit + 1) : Self.inflateChunk
        let chunk = min(needed, sliceLimit)
        let out = reserve(chunk)
        defer {
            stream.next_in = nil
            stream.avail_in = 0
        }
        var fed = 0
        while fed < input.count {
            let slice = min(input.count - fed, sliceLimit)
            stream.next_in = UnsafeMutablePointer(mutating: (inputBase + fed).assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(slice)
            fed += slice
            while true {
                stream.next_out = out.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(chunk)
                let status = CZlib.inflate(&stream, Z_SYNC_FLUSH)
                let produced = chunk - Int(stream.avail_out)
                switch status {
                case Z_OK, Z_BUF_ERROR:
                    break
                case Z_STREAM_END:
                    // A final block (BFINAL): the next message starts a new stream.
                    inflateReset(&stream)
                default:
                    let detail = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    throw ProtocolError.invalidCompressedData.with(reason: "invalid compressed data: \(detail)")
                }
                if produced > 0 { try output(UnsafeRawBufferPointer(start: out, count: produced)) }
                if status == Z_BUF_ERROR && produced == 0 { break }
                if stream.avail_in == 0 && stream.avail_out > 0 { break }
            }
        }
    }

    /// Compresses one whole message with `Z_SYNC_FLUSH` and returns it without the `00 00 ff ff` tail
    /// (RFC 7692 §7.2.1), borrowed until the next call; `nil` when zlib fails (the message then goes
    /// uncompressed, which is allowed). Input and output of any size go through zlib in slices of at most
    /// ``sliceLimit`` bytes; only the call that holds the end of the message flushes.
    func deflateMessage(_ message: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard start() else { return nil }
        let bound = Int(clamping: deflateBound(&stream, uLong(clamping: message.count)))
        var capacity = bound > Int.max - 16 ? Int.max : bound + 16
        var out = reserve(capacity)
        var written = 0
        var consumed = 0
        defer {
            stream.next_in = nil
            stream.avail_in = 0
        }
        while true {
            // zlib repeats the flush marker when a sync flush fills the output exactly: keep more than 6 bytes
            // of room in every call.
            let room = 64
            if capacity - written < room {
                capacity = capacity > Int.max / 2 ? Int.max : max(capacity * 2, written + room)
                out = reserve(capacity)
            }
            let inputSlice = min(message.count - consumed, sliceLimit)
            let outputSlice = min(capacity - written, max(sliceLimit, room))
            stream.next_in = message.baseAddress.map {
                UnsafeMutablePointer(mutating: ($0 + consumed).assumingMemoryBound(to: Bytef.self))
            }
            stream.avail_in = uInt(inputSlice)
            stream.next_out = (out + written).assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(outputSlice)
            let isLast = consumed + inputSlice == message.count
            let status = CZlib.deflate(&stream, isLast ? Z_SYNC_FLUSH : Z_NO_FLUSH)
            guard status == Z_OK || status == Z_BUF_ERROR else { return abandon() }
            let taken = inputSlice - Int(stream.avail_in)
            let produced = outputSlice - Int(stream.avail_out)
            consumed += taken
            written += produced
            if status == Z_BUF_ERROR && taken == 0 && produced == 0 {
                // Nothing left to do: the flush is complete, or zlib is stuck.
                if isLast && consumed == message.count { break }
                return abandon()
            }
            // Done when the flush completed: all input taken and room left in the output.
            if isLast && stream.avail_in == 0 && stream.avail_out > 0 { break }
        }
        // A sync flush ends with an empty stored block: 00 00 ff ff.
        guard written >= 4 else { return abandon() }
        return UnsafeRawBufferPointer(start: out, count: written - 4)
    }

    /// Gives up on a message zlib failed to compress: the stream has taken part of it into its window, which
    /// the peer will never see, so it is dropped and the next message starts a fresh one (always decodable).
    private func abandon() -> UnsafeRawBufferPointer? {
        end()
        return nil
    }

    fileprivate func counted(_ delta: Int) { allocatedBytes += delta }
}

// zlib allocation hooks that count bytes per stream. Each block is prefixed with its size.
private func zlibAllocate(_ opaque: voidpf?, _ items: uInt, _ size: uInt) -> voidpf? {
    let (bytes, overflow) = Int(items).multipliedReportingOverflow(by: Int(size))
    guard !overflow, let opaque else { return nil }
    let block = UnsafeMutableRawPointer.allocate(byteCount: bytes + 16, alignment: 16)
    block.storeBytes(of: bytes, as: Int.self)
    Unmanaged<ZStream>.fromOpaque(opaque).takeUnretainedValue().counted(bytes)
    return block + 16
}

private func zlibFree(_ opaque: voidpf?, _ address: voidpf?) {
    guard let address else { return }
    let block = address - 16
    let bytes = block.load(as: Int.self)
    if let opaque { Unmanaged<ZStream>.fromOpaque(opaque).takeUnretainedValue().counted(-bytes) }
    block.deallocate()
}
