/// The WebSocket protocol state machine for one connection, client or server (RFC 6455 §5-§8), without I/O.
///
/// Bytes in: ``receive(_:_:)`` parses frames from a buffer the caller owns, unmasks them in place, reassembles
/// messages, validates UTF-8 as it arrives, and hands each ``Event`` to a closure. Bytes out: automatic pongs,
/// close frames and copied sends accumulate in an output queue that the caller drains with
/// ``withPendingOutput(_:)``; large payloads can bypass the queue with ``makeFrameHeader(_:payloadLength:fin:)``.
/// Time: the caller calls ``tick(now:)`` at ``nextDeadline`` with its own monotonic clock; the connection
/// starts no timer or thread. Closing: ``shouldCloseTransport`` tells the caller when to close TCP.
///
/// ## Ownership of borrowed payloads
/// Payloads in events are `UnsafeRawBufferPointer`s that point either into the buffer passed to ``receive(_:_:)``
/// (zero-copy: a message that arrived as one frame in one buffer) or into storage owned by the connection (a
/// message reassembled from several frames or reads: copied once). Either way they are valid only inside the
/// closure that receives the event (with ``receive(_:)``: until the next call to `receive`), and while the
/// caller's buffer is alive and unchanged. Copy what you keep.
///
/// ## One owner
/// `Connection` is noncopyable: it owns reference-typed buffers and a codec with live zlib streams, so two
/// copies used side by side would corrupt each other. Store it in one place (a channel handler's stored
/// property, an actor, a local variable) and call its mutating methods there; the compiler rejects a second
/// copy, and overlapping accesses (statically for a local, at run time for a class property). Inside the
/// closure given to ``receive(_:_:)`` use the connection passed to it; an owner whose event handling calls
/// back into itself (a delegate that sends through the owner) loops over ``receive(_:)`` instead. Generic
/// containers must admit noncopyable values (`Box<Value: ~Copyable>`, `Optional`).
public struct Connection: ~Copyable {
    /// The role of this endpoint.
    public let role: Role
    /// The configuration in force.
    public let configuration: Configuration
    /// The negotiated per-message extension (e.g. permessage-deflate), if any.
    public let codec: (any MessageCodec)?

    /// Where the connection is in its life; ``state``, ``closeStatus`` and ``shouldCloseTransport`` derive
    /// from it.
    var lifecycle: Lifecycle = .open

    // Inbound.
    var parser: FrameParser
    /// Whether the codec owns RSV1 (computed once: reading the existential per frame costs a copy).
    let rsv1ClaimedByCodec: Bool
    /// The data message being received, between its first frame and its last.
    var inbound: InboundMessage? = nil
    /// The header of a frame whose payload is arriving in pieces.
    var currentFrame: FrameHeader? = nil
    let reassembly: ByteStorage
    let controlPayload = ByteStorage(maxCapacity: 128)
    /// Set when an event handed out reassembly storage: it is emptied at the next call to `receive`.
    var releaseOnNextCall = false

    // Outbound.
    var maskKeys: any MaskKeyGenerator
    let output = ByteStorage()
    let pongSlot = ByteStorage(maxCapacity: 128)
    var hasPendingPong = false
    var outboundMessageInProgress = false

    // Heartbeat.
    /// Bytes arrived since the last tick.
    var activity = false
    var lastActivity: Instant? = nil
    var pingSentAt: Instant? = nil
    var pingCounter: UInt32 = 0

    /// Reassembly and output storage above this many bytes is freed once emptied (the default of
    /// ``retainedReassemblyCapacity``).
    static let retainedCapacity = 64 << 10

    /// How much reassembly storage, in bytes, is kept after a message for the next one (default 64 KiB). A
    /// reassembly buffer that grew above it for a large message is freed at the next call to ``receive(_:)``
    /// after the message was handed out. An owner that raises it (up to `maxMessageLength`, so that a stream of
    /// large messages reuses one buffer instead of allocating and faulting in a fresh one per message) must
    /// call ``releaseBuffers()`` when the connection goes idle.
    public var retainedReassemblyCapacity = Connection.retainedCapacity

    /// Creates a connection in the open state, right after the opening handshake.
    ///
    /// - Parameters:
    ///   - role: our role; it decides masking in both directions (RFC 6455 §5.1).
    ///   - configuration: limits and timers.
    ///   - maskKeyGenerator: where masking keys for our frames come from (client role only).
    ///   - codec: the negotiated per-message extension, if any (e.g. permessage-deflate); it claims RSV1. The
    ///     connection becomes its only user: do not use it elsewhere.
    public init(
        role: Role,
        configuration: Configuration = Configuration(),
        maskKeyGenerator: some MaskKeyGenerator = SystemRandomMaskKeyGenerator(),
        codec: (any MessageCodec)? = nil
    ) {
        self.role = role
        self.configuration = configuration
        self.maskKeys = maskKeyGenerator
        self.codec = codec
        self.rsv1ClaimedByCodec = codec != nil && !configuration.claimedReservedBits.contains(.rsv1)
        self.parser = FrameParser(configuration: configuration.parserConfiguration(role: role, codec: codec != nil))
        self.reassembly = ByteStorage(maxCapacity: configuration.messageLimit)
    }

    // MARK: - Where the connection is

    /// The close handshake's progress, derived from the lifecycle.
    public var state: State {
        switch lifecycle {
        case .open: return .open
        case .closeSent: return .closing
        case .closeReceived, .failed, .closed: return .closed
        }
    }

    /// How the connection ended, once known: the peer's close status, the error we failed it with, or 1006
    /// (abnormal closure) when it ended without a completed close handshake. `nil` while open or closing.
    public var closeStatus: CloseStatus? {
        switch lifecycle {
        case .open, .closeSent: return nil
        case .closeReceived(let status, _), .failed(let status), .closed(let status, _): return status
        }
    }

    /// `true` when the caller should write any pending output and then close the TCP connection: after a
    /// failure, after a completed close handshake on the server (the server closes TCP first, RFC 6455 §7.1.1),
    /// when the peer closed TCP, or when a timeout expired.
    public var shouldCloseTransport: Bool {
        switch lifecycle {
        case .open, .closeSent, .closeReceived: return false
        case .failed, .closed: return true
        }
    }

    /// Whether data and control frames may still be sent: no close frame sent, not failed, transport alive.
    var canSend: Bool {
        if case .open = lifecycle { return true }
        return false
    }

    /// Whether frames from the peer are still read: its close frame has not arrived and we have not failed.
    var canReceive: Bool {
        switch lifecycle {
        case .open, .closeSent: return true
        case .closeReceived, .failed, .closed: return false
        }
    }
}

extension Connection {
    /// What ``receive(_:_:)`` found. Payloads are borrowed: see "Ownership of borrowed payloads".
    public enum Event {
        /// A complete text (validated UTF-8) or binary message (``MessageDelivery/wholeMessages`` mode).
        case message(MessageKind, UnsafeRawBufferPointer)
        /// Part of a message (``MessageDelivery/streaming`` mode). `isFirst` marks the first event of a
        /// message and `isFinal` its last; a message of one empty frame is one event with both set.
        case fragment(MessageKind, UnsafeRawBufferPointer, isFirst: Bool, isFinal: Bool)
        /// A ping with its payload (0-125 bytes). With ``Configuration/autoPong`` its pong is already queued.
        case ping(UnsafeRawBufferPointer)
        /// A pong with its payload (0-125 bytes), solicited or not (RFC 6455 §5.5.3).
        case pong(UnsafeRawBufferPointer)
        /// The peer's close frame. Its code is 1005 when the frame carried none. If we had not sent a close
        /// frame, the echo is already queued (RFC 6455 §5.5.1). Nothing more is received after it.
        case close(CloseStatus)
    }

    /// The close handshake's progress (RFC 6455 §7).
    public enum State: Sendable, Hashable {
        /// Data may flow both ways.
        case open
        /// We sent a close frame and wait for the peer's.
        case closing
        /// The close handshake completed, the connection failed, or the transport ended.
        case closed
    }

    /// Where a connection is in its life. Each step carries what it needs, so impossible combinations (a
    /// failure with no status, a deadline without a close frame) cannot be represented.
    ///
    /// ```
    /// open ─close()─▶ closeSent ─peer's close─▶ closeReceived (client) ─TCP closed or timeout─▶ closed
    ///  │                 │                     closed (server: it closes TCP first)
    ///  │                 └─timeout─▶ closed(1006)
    ///  └─peer's close (echoed)─▶ closeReceived (client) / closed (server)
    /// open, closeSent ─protocol error, fail(), dead peer─▶ failed;  closeReceived ─fail()─▶ closed
    /// every step ─receiveEOF()─▶ closed(transportEnded: true), keeping a status already known
    /// ```
    enum Lifecycle: Sendable, Hashable {
        /// Data may flow both ways.
        case open
        /// We sent our close frame and wait for the peer's (RFC 6455 §7.1.2), until `deadline` (armed at the
        /// first tick after the close frame).
        case closeSent(deadline: Instant?)
        /// The close handshake completed with the peer's `status`, and we (client role) wait for the server to
        /// close TCP (RFC 6455 §7.1.1) until `transportDeadline` (armed at the first tick).
        case closeReceived(CloseStatus, transportDeadline: Instant?)
        /// We failed the connection (RFC 6455 §7.1.7): our close frame, if any, is queued and the transport
        /// should close. `status` is what is reported (the error's code, or 1006 for a dead peer).
        case failed(CloseStatus)
        /// Over, with its final `status`; `transportEnded` is `true` once the peer's side of TCP was seen to
        /// end (``Connection/receiveEOF()``).
        case closed(CloseStatus, transportEnded: Bool)
    }
}
