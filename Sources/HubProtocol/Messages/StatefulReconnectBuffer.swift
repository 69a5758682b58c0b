/// The sequence bookkeeping of stateful reconnect for one side of a connection (HubProtocol.md, "Stateful
/// Reconnect"; ASP.NET Core's `MessageBuffer`), as a value with no I/O and no clock.
///
/// Only trackable messages (types 1-5, ``HubMessage/isTrackable``) count. Each side numbers the trackable messages
/// it sends 1, 2, 3, … and keeps them (`Element`: the encoded bytes) until the peer acknowledges them with an
/// `Ack` carrying the highest id it has processed. After a new transport is connected, each side first sends a
/// `Sequence` with the id of its oldest unacknowledged message (``resendSequenceId``), then replays the buffered
/// messages in order. The receiver counts trackable messages from that id on and drops those it has processed
/// already (ids at or below ``latestReceivedId``).
///
/// Bounded by the caller: ``bufferedBytes`` is what the buffer holds; the sender waits while it is above its
/// limit (default 100 000 bytes in ASP.NET Core and the JS client) until an `Ack` releases space.
public struct StatefulReconnectBuffer<Element>: Sendable where Element: Sendable {
    /// Why a received message breaks the protocol.
    public enum Violation: Error, Sendable, Equatable {
        /// A `Sequence` announced an id above the next one expected: messages in between would be lost.
        case sequenceAhead(announced: Int64, expected: Int64)
    }

    /// What the receiver does with a message.
    public enum Disposition: Sendable, Equatable {
        /// Process it.
        case process
        /// A trackable message already processed before the reconnect: drop it.
        case duplicate
        /// An `Ack`: ``acknowledge(_:)`` was applied; nothing else to do.
        case acknowledged
        /// A `Sequence`: the receiving count was reset; nothing else to do.
        case sequenced
    }

    private var buffer: [(id: Int64, element: Element, bytes: Int)] = []
    private var head = 0
    /// The id given to the last trackable message sent (0 before the first).
    public private(set) var lastSentId: Int64 = 0
    /// The bytes of the messages waiting for an `Ack`.
    public private(set) var bufferedBytes = 0
    /// The id the next trackable message received will have.
    public private(set) var nextReceivingId: Int64 = 1
    /// The highest trackable message id processed (0 before the first).
    public private(set) var latestReceivedId: Int64 = 0
    /// The id carried by the last `Ack` sent (0 before the first).
    public private(set) var lastAckSentId: Int64 = 0

    public init() {}

    /// The number of messages waiting for an `Ack`.
    public var bufferedCount: Int { buffer.count - head }

    // MARK: Sending

    /// Numbers a trackable message being sent and keeps it until acknowledged; returns its id.
    @discardableResult
    public mutating func append(_ element: Element, bytes: Int) -> Int64 {
        lastSentId += 1
        buffer.append((lastSentId, element, bytes))
        bufferedBytes += bytes
        return lastSentId
    }

    /// Releases the messages with ids up to `sequenceId` (an `Ack` from the peer). An id above ``lastSentId``
    /// releases everything sent (ASP.NET Core does the same); returns the bytes released.
    @discardableResult
    public mutating func acknowledge(_ sequenceId: Int64) -> Int {
        var released = 0
        while head < buffer.count, buffer[head].id <= sequenceId {
            released += buffer[head].bytes
            head += 1
        }
        bufferedBytes -= released
        if head == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
        return released
    }

    /// The id the `Sequence` sent after a reconnect carries: the oldest unacknowledged message, or the next id
    /// when none waits.
    public var resendSequenceId: Int64 { head < buffer.count ? buffer[head].id : lastSentId + 1 }

    /// The unacknowledged messages to replay after the `Sequence`, oldest first.
    public var unacknowledged: [Element] { buffer[head...].map(\.element) }

    // MARK: Receiving

    /// Classifies a received message and updates the receiving count: trackable messages are numbered, those
    /// already processed are duplicates; an `Ack` releases buffered messages; a `Sequence` resets the count.
    /// - Throws: ``Violation/sequenceAhead(announced:expected:)`` for a `Sequence` above the next id expected.
    public mutating func receive(_ message: HubMessage) throws(Violation) -> Disposition {
        switch message {
        case .ack(let sequenceId):
            acknowledge(sequenceId)
            return .acknowledged
        case .sequence(let sequenceId):
            guard sequenceId <= nextReceivingId else {
                throw .sequenceAhead(announced: sequenceId, expected: nextReceivingId)
            }
            nextReceivingId = sequenceId
            return .sequenced
        default:
            guard message.isTrackable else { return .process }
            let id = nextReceivingId
            nextReceivingId += 1
            if id <= latestReceivedId { return .duplicate }
            latestReceivedId = id
            return .process
        }
    }

    /// A new transport replaced the old one: the last `Ack` may have been lost with it, so the next
    /// ``takeAck()`` repeats it.
    public mutating func transportReplaced() { lastAckSentId = 0 }

    /// The id of the `Ack` to send now, or nil when nothing new was processed since the last one; marks it sent.
    public mutating func takeAck() -> Int64? {
        guard latestReceivedId > lastAckSentId else { return nil }
        lastAckSentId = latestReceivedId
        return latestReceivedId
    }
}
