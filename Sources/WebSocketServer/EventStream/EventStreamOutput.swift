import NIOCore
import ServerSentEvents

/// Where an event stream's bytes go: the seam between the protocol-independent ``EventStreamOutput`` and one
/// HTTP version (``HTTP1EventStreamHandler``: HTTP/1.1 chunks; ``HTTP2EventStreamHandler``: DATA frames on an
/// HTTP/2 stream). Called on the channel's event loop only.
protocol EventStreamTransport: AnyObject {
    /// The output writing through this transport, told when the transport closes (held strongly).
    var output: EventStreamOutput? { get set }
    /// Writes and flushes body bytes (one event or comment); `promise` completes when they left the process.
    func writeBody(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?)
    /// Ends the response after what was written, then closes the stream.
    func finishResponse()
    /// Closes the stream at once (buffer overflow).
    func abort()
}

/// Raised by ``EventStreamWriter/send(_:)`` and friends once the stream is over (client gone, stream ended,
/// server stopped, or closed for overflowing its buffer).
public struct EventStreamClosedError: Error, Sendable, Hashable {}

/// The protocol-independent writing side of one event stream, confined to its event loop: turns events into
/// `ByteBuffer`s, counts the bytes written but not yet sent (the bound of ``EventStreamRoute/Configuration/
/// maxBufferedBytes``), wakes producers waiting for room, and writes heartbeats.
final class EventStreamOutput {
    let eventLoop: any EventLoop
    private let allocator: ByteBufferAllocator
    private let maxBufferedBytes: Int
    private weak var transport: (any EventStreamTransport)?
    /// Bytes handed to the transport whose write has not completed.
    private(set) var bufferedBytes = 0
    private(set) var isClosed = false
    private var waiters: [EventLoopPromise<Void>] = []
    private var heartbeat: Scheduled<Void>?
    private var heartbeatInterval: TimeAmount?
    /// Called once when the stream closes (client gone, ended, aborted).
    var onClose: [() -> Void] = []
    /// Called when the buffer drained to the limit after it was above it.
    var onWritable: (() -> Void)?
    private var wasFull = false

    init(
        eventLoop: any EventLoop,
        allocator: ByteBufferAllocator,
        maxBufferedBytes: Int,
        transport: any EventStreamTransport
    ) {
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.maxBufferedBytes = maxBufferedBytes
        self.transport = transport
    }

    /// Whether the buffer is within its limit.
    var isWritable: Bool { !isClosed && bufferedBytes <= maxBufferedBytes }

    func startHeartbeat(every interval: Duration) {
        let amount = TimeAmount(saturating: interval)
        guard amount.nanoseconds > 0 else { return }
        heartbeatInterval = amount
        scheduleHeartbeat()
    }

    private func scheduleHeartbeat() {
        guard !isClosed, let interval = heartbeatInterval else { return }
        heartbeat = eventLoop.assumeIsolated().scheduleTask(in: interval) { [weak self] in
            guard let self else { return }
            if self.isWritable { self.write(ByteBuffer(bytes: EventStreamEncoder.comment())) }
            self.scheduleHeartbeat()
        }
    }

    /// Writes `bytes` whatever the buffer holds. Returns false when the stream is closed.
    @discardableResult
    func write(_ bytes: ByteBuffer) -> Bool {
        guard !isClosed, let transport else { return false }
        let count = bytes.readableBytes
        bufferedBytes += count
        if bufferedBytes > maxBufferedBytes { wasFull = true }
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [weak self] _ in self?.written(count) }
        transport.writeBody(bytes, promise: promise)
        return true
    }

    func write(_ event: ServerSentEvent) -> Bool {
        var buffer = allocator.buffer(capacity: (event.data?.utf8.count ?? 0) + 32)
        buffer.writeBytes(EventStreamEncoder.encode(event))
        return write(buffer)
    }

    /// Writes `bytes`, then returns a future that succeeds once the buffer is within its limit (at once when it
    /// is), or fails with ``EventStreamClosedError`` when the stream closes first: the producer's pause.
    func writeAndWaitForRoom(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        guard write(bytes) else { return eventLoop.makeFailedFuture(EventStreamClosedError()) }
        if bufferedBytes <= maxBufferedBytes { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        waiters.append(promise)
        return promise.futureResult
    }

    /// Writes `bytes` if they fit within the limit; otherwise closes the stream (the broadcast policy) and
    /// returns false.
    func writeOrDrop(_ bytes: ByteBuffer) -> Bool {
        guard !isClosed else { return false }
        if bufferedBytes > 0, bufferedBytes + bytes.readableBytes > maxBufferedBytes {
            abort()
            return false
        }
        return write(bytes)
    }

    private func written(_ count: Int) {
        bufferedBytes -= count
        guard bufferedBytes <= maxBufferedBytes else { return }
        let ready = waiters
        waiters = []
        for waiter in ready { waiter.succeed() }
        if wasFull {
            wasFull = false
            onWritable?()
        }
    }

    /// Ends the response (the producer is done).
    func finish() {
        guard !isClosed else { return }
        transport?.finishResponse()
    }

    /// Closes at once.
    func abort() {
        guard !isClosed else { return }
        transport?.abort()
    }

    /// The transport is gone: fail waiters, stop the heartbeat, tell the listeners.
    func closed() {
        guard !isClosed else { return }
        isClosed = true
        heartbeat?.cancel()
        heartbeat = nil
        let pending = waiters
        waiters = []
        for waiter in pending { waiter.fail(EventStreamClosedError()) }
        let listeners = onClose
        onClose = []
        for listener in listeners { listener() }
        onWritable = nil
    }
}

/// Sends events on one stream from any task (``EventStreamRoute/Handler/async(_:)``).
public struct EventStreamWriter: Sendable {
    private let output: NIOLoopBound<EventStreamOutput>
    private let allocator: ByteBufferAllocator

    init(output: EventStreamOutput, allocator: ByteBufferAllocator) {
        self.output = NIOLoopBound(output, eventLoop: output.eventLoop)
        self.allocator = allocator
    }

    /// Writes `event` and flushes it. Returns at once while the stream's buffer is within
    /// ``EventStreamRoute/Configuration/maxBufferedBytes``; otherwise waits until the client has read enough
    /// (the producer is paused).
    /// - Throws: ``EventStreamClosedError`` when the stream is over (the client went away).
    public func send(_ event: ServerSentEvent) async throws {
        try await send(bytes: EventStreamEncoder.encode(event))
    }

    /// Writes a comment line (clients ignore it), e.g. for an application-level heartbeat.
    /// - Throws: ``EventStreamClosedError`` when the stream is over.
    public func sendComment(_ text: String) async throws {
        try await send(bytes: EventStreamEncoder.comment(text))
    }

    /// Writes bytes that are already a valid event stream (e.g. an event encoded once with
    /// `EventStreamEncoder` and sent to many streams). Same waiting and errors as ``send(_:)``.
    public func send(encoded bytes: ByteBuffer) async throws {
        let output = self.output
        try await output.eventLoop.flatSubmit {
            output.value.writeAndWaitForRoom(bytes)
        }.get()
    }

    private func send(bytes: [UInt8]) async throws {
        try await send(encoded: allocator.buffer(bytes: bytes))
    }
}

/// Sends events on one stream from its event loop (``EventStreamRoute/Handler/callback(_:)``). Use it on that
/// event loop only (``eventLoop``).
public final class EventStreamLoopWriter {
    let output: EventStreamOutput
    /// The request that opened the stream.
    public let request: EventStreamRequest
    /// Runs a shared-history read as a task of the server, bound to the stream's channel.
    let runReplay: EventStreamBroadcaster.ReplayRunner?

    init(
        output: EventStreamOutput,
        request: EventStreamRequest,
        runReplay: EventStreamBroadcaster.ReplayRunner? = nil
    ) {
        self.output = output
        self.request = request
        self.runReplay = runReplay
    }

    /// The event loop the writer must be used on.
    public var eventLoop: any EventLoop { output.eventLoop }

    /// Whether the stream is open and its buffer within ``EventStreamRoute/Configuration/maxBufferedBytes``.
    /// Writing while it is false still writes (the buffer grows); pausing is the caller's job.
    public var isWritable: Bool { output.isWritable }

    /// Whether the stream is over.
    public var isClosed: Bool { output.isClosed }

    /// Writes and flushes `event`. Returns false when the stream is over.
    @discardableResult
    public func write(_ event: ServerSentEvent) -> Bool { output.write(event) }

    /// Writes bytes that are already a valid event stream. Returns false when the stream is over.
    @discardableResult
    public func write(encoded bytes: ByteBuffer) -> Bool { output.write(bytes) }

    /// Ends the stream (the response ends and the connection closes).
    public func finish() { output.finish() }

    /// Called once when the stream is over, for whatever reason.
    public func onClose(_ callback: @escaping () -> Void) {
        if output.isClosed { callback() } else { output.onClose.append(callback) }
    }

    /// Called each time the buffer drained back to its limit after exceeding it.
    public func onWritable(_ callback: @escaping () -> Void) { output.onWritable = callback }
}
