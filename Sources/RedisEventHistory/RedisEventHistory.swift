import NIOConcurrencyHelpers
import RedisClient
import ServerSentEvents
import WebSocketServer

/// An ``EventHistory`` on a Redis stream, shared by every server that uses the same key: events are appended
/// with `XADD key MAXLEN ~ maxLength * type … data … [retry …]` and replayed with `XRANGE key id +`
/// (Redis Streams, <https://redis.io/docs/latest/develop/data-types/streams/>). An event's ID is its stream
/// entry ID (`milliseconds-sequence`), which Redis assigns in append order, so it is the same on every server.
///
/// - Bounds: about ``Configuration/maxLength`` entries (`MAXLEN ~` trims whole macro nodes, so a few more may
///   stay); a replay returns at most ``Configuration/maxLength`` events.
/// - An ID that is not a stream ID, or older than the oldest entry kept, is unknown (``events(after:)`` returns
///   nil); the broadcaster then applies its ``EventStreamBroadcaster/UnknownIDPolicy``.
/// - Faults: every call is bounded by ``Configuration/timeout``. When Redis cannot be reached, or does not answer
///   in time, the call throws and the connection is dropped; the next call connects again. The broadcaster
///   meanwhile serves live events without a history (see ``EventStreamBroadcaster``).
///
/// Uses one connection of its own (commands are pipelined on it); thread-safe.
public final class RedisEventHistory: EventHistory {
    public struct Configuration: Sendable {
        /// Where Redis is.
        public var redis: RedisConfiguration
        /// The stream's key; every server of one event stream uses the same one.
        public var key: String
        /// About how many events the stream keeps (`MAXLEN ~`), and the most a replay returns. Default 1000.
        public var maxLength: Int
        /// The longest a connect, append or read may take before it fails. Default 2 s.
        public var timeout: Duration

        public init(
            redis: RedisConfiguration, key: String, maxLength: Int = 1000, timeout: Duration = .seconds(2)
        ) {
            self.redis = redis
            self.key = key
            self.maxLength = max(1, maxLength)
            self.timeout = timeout
        }
    }

    /// Why a call failed.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let configuration: Configuration
    private let connection = NIOLockedValueBox<RedisConnection?>(nil)

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Closes the connection (a later call opens a new one).
    public func close() async {
        let current = connection.withLockedValue { connection in
            defer { connection = nil }
            return connection
        }
        await current?.close()
    }

    public func append(_ event: ServerSentEvent) async throws -> String {
        var fields: [(field: String, value: [UInt8])] = []
        if let type = event.type { fields.append(("type", Array(type.utf8))) }
        if let data = event.data { fields.append(("data", Array(data.utf8))) }
        if let retry = event.retry { fields.append(("retry", Array(String(retry).utf8))) }
        // A stream entry needs at least one field.
        if fields.isEmpty { fields.append(("empty", [])) }
        let key = configuration.key
        let maxLength = configuration.maxLength
        let entry = fields
        return try await withConnection { connection in
            try await connection.xadd(key: key, maxLength: maxLength, approximate: true, fields: entry)
        }
    }

    public func events(after id: String?) async throws -> [ServerSentEvent]? {
        let key = configuration.key
        let maxLength = configuration.maxLength
        guard let id else {
            let entries = try await withConnection { try await $0.xrange(key: key, count: maxLength) }
            return try entries.map(Self.event)
        }
        guard Self.isStreamID(id) else { return nil }
        // From `id` inclusive: the first entry is `id` itself when the stream still holds it (IDs are never
        // reused, so an entry with that ID is the event the client saw).
        let entries = try await withConnection {
            try await $0.xrange(key: key, start: id, count: maxLength + 1)
        }
        guard let first = entries.first, first.id == id else { return nil }
        return try entries.dropFirst().map(Self.event)
    }

    /// `<milliseconds>-<sequence>`, both decimal.
    static func isStreamID(_ id: String) -> Bool {
        let parts = id.utf8.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        return parts.count == 2
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 20
                    && part.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            }
    }

    private static func event(_ entry: RedisStreamEntry) throws -> ServerSentEvent {
        var type: String?
        var data: String?
        var retry: Int?
        for field in entry.fields {
            switch field.name {
            case "type": type = String(decoding: field.value, as: UTF8.self)
            case "data": data = String(decoding: field.value, as: UTF8.self)
            case "retry": retry = Int(String(decoding: field.value, as: UTF8.self))
            default: break
            }
        }
        do {
            return try ServerSentEvent(type: type, data: data, id: entry.id, retry: retry)
        } catch {
            throw Failure(description: "stream entry \(entry.id) is not a valid event: \(error)")
        }
    }

    /// Runs `body` on the connection (connecting first if needed), bounded by the timeout; drops the connection
    /// when the call fails.
    private func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (RedisConnection) async throws -> T
    ) async throws -> T {
        let redis = configuration.redis
        let timeout = configuration.timeout
        let current = connection.withLockedValue { $0 }
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    let active: RedisConnection
                    if let current, current.isActive {
                        active = current
                    } else {
                        active = try await RedisConnection.connect(redis)
                        self.connection.withLockedValue { $0 = active }
                    }
                    return try await body(active)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    throw Failure(description: "Redis did not answer within \(timeout)")
                }
                return value
            }
        } catch {
            let dropped = connection.withLockedValue { connection in
                defer { connection = nil }
                return connection
            }
            await dropped?.close()
            throw error
        }
    }
}
