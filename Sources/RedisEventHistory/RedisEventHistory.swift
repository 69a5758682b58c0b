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
        guard let id else {
            // The newest `maxLength` events (`MAXLEN ~` may keep a few more than that).
            guard let entries = try await entries(from: "-") else { return nil }
            return try entries.suffix(configuration.maxLength).map(Self.event)
        }
        guard Self.isStreamID(id) else { return nil }
        // From `id` inclusive: the first entry is `id` itself when the stream still holds it (IDs are never
        // reused, so an entry with that ID is the event the client saw). Read to the end of the stream: with
        // `MAXLEN ~` it may hold more than `maxLength` entries, and a replay that stopped early would skip the
        // newest events for good (the client's Last-Event-ID moves past them with the next live event).
        guard let entries = try await entries(from: id), let first = entries.first, first.id == id else {
            return nil
        }
        return try entries.dropFirst().map(Self.event)
    }

    /// Every entry from `start` (inclusive, or `-`) to the end, read in pages of `maxLength + 1`; nil when the stream
    /// holds more than four times `maxLength` (+ 256) entries from there (it is not trimmed as configured: the
    /// caller treats the ID as unknown rather than reading without bound).
    private func entries(from start: String) async throws -> [RedisStreamEntry]? {
        let key = configuration.key
        let page = configuration.maxLength + 1
        let cap = configuration.maxLength * 4 + 256
        var entries: [RedisStreamEntry] = []
        var next = start
        while true {
            let from = next
            let batch = try await withConnection { try await $0.xrange(key: key, start: from, count: page) }
            entries.append(contentsOf: batch)
            guard batch.count == page, let last = batch.last else { return entries }
            guard entries.count <= cap else { return nil }
            next = "(" + last.id
        }
    }

    /// `<milliseconds>-<sequence>`, both decimal.
    static func isStreamID(_ id: String) -> Bool {
        let parts = id.utf8.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        // Two unsigned 64-bit numbers (Redis refuses larger ones with an error reply).
        return parts.count == 2
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 20
                    && part.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
                    && UInt64(String(decoding: part, as: UTF8.self)) != nil
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

    /// The stored connection if it is active, else a new one. Calls that connect at the same time keep one
    /// connection: the others close theirs (no connection is left open unreferenced).
    private func activeConnection(_ redis: RedisConfiguration) async throws -> RedisConnection {
        if let current = connection.withLockedValue({ $0 }), current.isActive { return current }
        let fresh = try await RedisConnection.connect(redis)
        let (winner, loser) = connection.withLockedValue { stored -> (RedisConnection, RedisConnection?) in
            if let stored, stored.isActive { return (stored, fresh) }
            let previous = stored
            stored = fresh
            return (fresh, previous)
        }
        await loser?.close()
        return winner
    }

    /// Runs `body` on the connection (connecting first if needed), bounded by the timeout; drops the connection
    /// when the call fails (only the one this call used: a concurrent call's healthy connection stays), except
    /// for an error reply (``RedisClient/RedisError/server(_:)``), after which the connection is still in sync.
    private func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (RedisConnection) async throws -> T
    ) async throws -> T {
        let redis = configuration.redis
        let timeout = configuration.timeout
        let used = NIOLockedValueBox<RedisConnection?>(nil)
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    let active = try await self.activeConnection(redis)
                    used.withLockedValue { $0 = active }
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
        } catch let error as RedisError {
            // An error reply leaves the connection in sync and usable by the other callers; anything else (a
            // lost connection, a protocol violation) drops it.
            if case .server = error { throw error }
            await dropConnection(used: used)
            throw error
        } catch {
            await dropConnection(used: used)
            throw error
        }
    }

    /// Forgets the shared connection when it is the one `used` held, and closes it.
    private func dropConnection(used: NIOLockedValueBox<RedisConnection?>) async {
        let failed = used.withLockedValue { $0 }
        let dropped = connection.withLockedValue { connection -> RedisConnection? in
            guard let failed, connection === failed else { return nil }
            connection = nil
            return failed
        }
        await (dropped ?? failed)?.close()
    }
}
