/// A message received on a subscribed channel or pattern.
public struct PubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public var channel: String
    /// The pattern that matched, for pattern subscriptions (`PSUBSCRIBE`); `nil` for channel subscriptions.
    public var pattern: String?
    /// The message, as published.
    public var payload: [UInt8]

    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// What a pub/sub backplane needs from a broker connection: publish, subscribe, unsubscribe, and the messages
/// of its subscriptions as one sequence. ``RedisConnection`` conforms; a well-kept Redis client can replace it
/// by conforming too.
///
/// The contract: delivery is at most once; messages of one channel arrive in publish order; when the
/// connection is lost, ``messages`` ends (with an error) and every call fails. Reconnection is the owner's
/// job: connect again and subscribe again to every channel it needs.
public protocol PubSubConnection: Sendable {
    associatedtype Messages: AsyncSequence, Sendable where Messages.Element == PubSubMessage

    /// The messages of every subscription of this connection, in arrival order; one consumer. Ends with an
    /// error when the connection is lost, normally after ``close()``.
    var messages: Messages { get }

    /// Publishes `payload` on `channel`. - Returns: how many subscribers received it (on this broker node).
    func publish(_ payload: [UInt8], to channel: String) async throws -> Int

    /// Subscribes to channels; returns once the broker confirmed every one.
    func subscribe(to channels: [String]) async throws

    /// Unsubscribes from channels; returns once the broker confirmed every one.
    func unsubscribe(from channels: [String]) async throws

    /// Subscribes to glob-style patterns; returns once the broker confirmed every one.
    func subscribe(toPatterns patterns: [String]) async throws

    /// Unsubscribes from patterns; returns once the broker confirmed every one.
    func unsubscribe(fromPatterns patterns: [String]) async throws

    /// Closes the connection; ``messages`` ends without an error.
    func close() async
}
