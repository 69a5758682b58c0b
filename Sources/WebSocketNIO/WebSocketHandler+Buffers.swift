import NIOCore
import WebSocketCore

/// The buffers a ``WebSocketHandler`` keeps from one read or send to the next while its connection is busy, so
/// that a stream of messages reuses memory instead of allocating (and, for large messages, faulting in) fresh
/// buffers per read or per message.
///
/// - `readScratch`: the private copy of each read (``WebSocketConfiguration/unmasksInReceivedBuffer`` `false`),
///   at most the largest read (NIO's receive allocator bounds it, 64 KiB by default).
/// - `sendBuffer`: the frame buffer of the last copied send above
///   ``WebSocketConfiguration/smallPayloadCopyLimit``, at most the largest such frame (bounded by what the
///   application sends).
/// - The core's reassembly buffer, kept up to `maxMessageLength` (`Connection.retainedReassemblyCapacity`).
/// - `outputBuffer`: the buffer of the last gathered write (the frames answering one read, or the header of a frame
///   whose payload is written by reference), at most ``maxOutputBufferCapacity``; kept only while one of the
///   buffers above is held (their release timer is armed), so that a connection that only exchanges small messages
///   in place keeps no buffer and no timer for it.
///
/// A buffer is reused only when nobody else references it any more (NIO finished writing it, no slice of a read
/// was handed out): `ByteBuffer.clear(minimumCapacity:)` allocates a fresh one otherwise. All of them are
/// released when the connection goes idle: no read and no copied send for between one and two
/// ``idleReleaseDelay``s (one timer, armed only while buffers are held), and when the connection ends.
struct ReusableBuffers {
    /// How long the connection must stay without reads and sends before its buffers are released.
    static let idleReleaseDelay = TimeAmount.seconds(1)
    /// The largest `outputBuffer` kept (a read is at most 64 KiB with NIO's default receive allocator).
    static let maxOutputBufferCapacity = 1 << 16

    var readScratch: ByteBuffer?
    var sendBuffer: ByteBuffer?
    var outputBuffer: ByteBuffer?
    /// The whole message being joined from the core's pieces (`joinsMessages`), at most `maxMessageLength`.
    var message: ByteBuffer?
    /// A message is being joined in `message`: its first piece arrived, its final one has not.
    var isJoiningMessage = false
    /// A read or a send used the buffers since the release timer was armed.
    var usedSinceArmed = false
    var releaseTimer: Scheduled<Void>?

    /// An empty buffer with room for `capacity` bytes: the one in `slot` when it is free (taken out of the slot),
    /// else a new one. `clear(minimumCapacity:)` allocates afresh when NIO or a slice still references it.
    private static func reuse(_ slot: inout ByteBuffer?, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = slot.take() else {
            return allocator.buffer(capacity: capacity)
        }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    /// `read`'s readable bytes in a buffer of our own: the scratch buffer when it is free, else a new one.
    mutating func privateCopy(of read: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var copy = Self.reuse(&self.readScratch, capacity: read.readableBytes, allocator: allocator)
        copy.writeImmutableBuffer(read)
        return copy
    }

    /// An empty buffer with room for `capacity` bytes for a copied send: the last send buffer when it is free.
    mutating func takeSendBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.reuse(&self.sendBuffer, capacity: capacity, allocator: allocator)
    }

    /// An empty buffer with room for `capacity` bytes for a gathered write or a frame header: the last one when it
    /// is free.
    mutating func takeOutputBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.reuse(&self.outputBuffer, capacity: capacity, allocator: allocator)
    }

    /// An empty buffer for a new message of at least `minimumCapacity` bytes: the last one when it is free.
    mutating func takeMessageBuffer(minimumCapacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.reuse(&self.message, capacity: minimumCapacity, allocator: allocator)
    }

    /// Drops every buffer and the release timer, except a message buffer that holds the first pieces of a
    /// message still being received (a peer may pause for any time between fragments, RFC 6455 section 5.4).
    mutating func releaseAll() {
        self.readScratch = nil
        self.sendBuffer = nil
        self.outputBuffer = nil
        if !self.isJoiningMessage {
            self.message = nil
        }
        self.releaseTimer?.cancel()
        self.releaseTimer = nil
        self.usedSinceArmed = false
    }

    /// Drops every buffer, the one of a message being joined included (the connection has ended).
    mutating func releaseEverything() {
        self.isJoiningMessage = false
        self.releaseAll()
    }
}

extension WebSocketHandler {
    /// Whether buffer memory is held that an idle connection would not need.
    private var holdsBuffers: Bool {
        self.buffers.readScratch != nil || self.buffers.sendBuffer != nil || self.buffers.outputBuffer != nil
            || (self.buffers.message != nil && !self.buffers.isJoiningMessage)
            || self.connection.bufferCapacity > 0
    }

    // MARK: - Whole messages

    /// Joins the core's pieces of a message (`joinsMessages`) and delivers it whole: where it arrived when it came
    /// in one piece (no copy), else from the message buffer (one copy per piece, reused from message to message).
    func joinPiece(
        _ kind: MessageKind,
        _ payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool,
        to webSocket: WebSocketDelegateContext
    ) {
        if isFirst && isFinal {
            self.deliverMessage(kind, payload, to: webSocket)
            return
        }
        if isFirst {
            self.buffers.message = self.buffers.takeMessageBuffer(
                minimumCapacity: payload.count,
                allocator: webSocket.allocator
            )
            self.buffers.isJoiningMessage = true
        }
        self.buffers.message?.writeBytes(payload)
        guard isFinal else { return }
        self.buffers.isJoiningMessage = false
        guard let message = self.buffers.message else { return }
        message.withUnsafeReadableBytes { bytes in
            self.deliverMessage(kind, bytes, to: webSocket)
        }
    }

    /// A buffer of our own that holds exactly `bytes`, so that it can be written or handed out without a copy:
    /// the joined message buffer, or a slice of the read being processed (when `bytes` is at least a quarter of
    /// it, so that a small payload does not keep a large read alive). Nil when `bytes` lie elsewhere.
    func ownedBuffer(holding bytes: UnsafeRawBufferPointer) -> ByteBuffer? {
        guard let base = bytes.baseAddress else { return nil }
        if let message = self.buffers.message, message.readableBytes == bytes.count,
            message.withUnsafeReadableBytes({ $0.baseAddress == base })
        {
            return message
        }
        if let read = self.currentRead, bytes.count >= read.readableBytes / 4 {
            return self.sliceOfCurrentRead(bytes)
        }
        return nil
    }

    /// Keeps `buffer`, just written (the gathered frames of a read, or a frame header), for the next gathered
    /// write: only while other reusable buffers are held (their release timer is armed; it releases this one with
    /// them) and when it is at most ``ReusableBuffers/maxOutputBufferCapacity``.
    func keepOutputBuffer(_ buffer: ByteBuffer) {
        guard self.buffers.releaseTimer != nil, buffer.capacity <= ReusableBuffers.maxOutputBufferCapacity else {
            return
        }
        self.buffers.outputBuffer = buffer
    }

    /// Called after each read burst and copied large send: keeps the buffers for the next message and arms the
    /// release timer when buffers are held.
    func noteBufferUse(context: ChannelHandlerContext) {
        self.buffers.usedSinceArmed = true
        guard self.buffers.releaseTimer == nil, self.finalStatus == nil, self.holdsBuffers else { return }
        self.armBufferRelease(context: context)
    }

    private func armBufferRelease(context: ChannelHandlerContext) {
        self.buffers.usedSinceArmed = false
        self.buffers.releaseTimer = context.eventLoop.assumeIsolated().scheduleTask(
            in: ReusableBuffers.idleReleaseDelay
        ) {
            self.bufferReleaseTimerFired()
        }
    }

    private func bufferReleaseTimerFired() {
        self.buffers.releaseTimer = nil
        guard let context = self.context, self.finalStatus == nil else { return }
        if self.buffers.usedSinceArmed {
            self.armBufferRelease(context: context)
            return
        }
        self.releaseIdleBuffers()
    }

    /// Frees the reusable buffers and the core's idle buffer memory; they are allocated again on demand.
    func releaseIdleBuffers() {
        self.buffers.releaseAll()
        self.connection.releaseBuffers()
    }
}
