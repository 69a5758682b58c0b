import RedisTestSupport
import EventSourceClient
import NIOCore
import RESP
import RedisClient
import RedisEventHistory
import ServerSentEvents
import Testing
import WebSocketServer

/// SSE resumption across servers: two ``Server``s in this process share one Redis stream (``RedisEventHistory``);
/// a client that drops from one and reconnects to the other with `Last-Event-ID` gets exactly what it missed.
@Suite(
    "Shared SSE history on Redis Streams",
    .enabled(
        if: RedisServerProcess.binary != nil, Comment(rawValue: RedisServerProcess.missingMessage)),
    .serialized,
    .timeLimit(.minutes(1))
)
struct SharedEventHistoryTests {
    func history(_ redis: RedisServerProcess, key: String = "events", maxLength: Int = 100)
        -> RedisEventHistory
    {
        RedisEventHistory(
            configuration: .init(
                redis: RedisConfiguration(host: "127.0.0.1", port: redis.port), key: key,
                maxLength: maxLength)
        )
    }

    func server(_ broadcaster: EventStreamBroadcaster) -> Server {
        var configuration = Server.Configuration(port: 0)
        configuration.shutdownGracePeriod = .seconds(1)
        return Server(
            configuration: configuration,
            routes: [],
            eventStreamRoutes: [EventStreamRoute(path: "/events", handler: .broadcast(broadcaster))]
        )
    }

    /// The first `count` events of a stream from `port`, starting after `lastEventID`.
    func events(port: Int, lastEventID: String = "", count: Int) async throws -> [MessageEvent] {
        let source = try EventSource(
            url: "http://127.0.0.1:\(port)/events",
            configuration: .init(lastEventID: lastEventID)
        )
        return try await withTimeout(.seconds(10)) {
            var received: [MessageEvent] = []
            for try await output in source {
                if case .event(let event) = output { received.append(event) }
                if received.count == count { break }
            }
            return received
        }
    }

    func publish(_ broadcaster: EventStreamBroadcaster, _ data: String) async throws -> String {
        guard let id = await broadcaster.publishShared(try ServerSentEvent(data: data, id: "ignored"))
        else {
            throw TestFailure("the shared history refused \(data)")
        }
        return id
    }

    /// Polls `condition` every 10 ms for at most 5 s.
    func eventually(_ condition: @Sendable () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test(
        "a client resumes on another server with exactly the missed events, in order, from both servers"
    )
    func resumeOnAnotherServer() async throws {
        try await withRedisServer { redis in
            let one = EventStreamBroadcaster(sharedHistory: history(redis))
            let two = EventStreamBroadcaster(sharedHistory: history(redis))
            try await server(one).withRunning { serverOne in
                try await server(two).withRunning { serverTwo in
                    // Live on server 1: three events, with the stream's IDs.
                    async let live = events(port: serverOne.port, count: 3)
                    #expect(await eventually { one.subscriberCount == 1 })
                    var ids: [String] = []
                    for number in 1...3 { ids.append(try await publish(one, "\(number)")) }
                    let seen = try await live
                    #expect(seen.map(\.data) == ["1", "2", "3"])
                    #expect(seen.map(\.lastEventID) == ids)
                    // The client is gone; events go on, through both servers.
                    for number in 4...6 { ids.append(try await publish(one, "\(number)")) }
                    for number in 7...8 { ids.append(try await publish(two, "\(number)")) }
                    // It reconnects to server 2 with its last ID: the missed events, then a live one.
                    let lastSeen = ids[2]
                    async let resumed = events(port: serverTwo.port, lastEventID: lastSeen, count: 6)
                    #expect(await eventually { two.subscriberCount == 1 })
                    ids.append(try await publish(two, "9"))
                    let got = try await resumed
                    #expect(got.map(\.data) == ["4", "5", "6", "7", "8", "9"])
                    #expect(got.map(\.lastEventID) == Array(ids[3...]))
                    #expect(one.sharedHistoryFailures == 0 && two.sharedHistoryFailures == 0)
                }
            }
        }
    }

    @Test(
        "RedisEventHistory: IDs in append order; unknown and malformed IDs are unknown; nil reads everything"
    )
    func historyReads() async throws {
        try await withRedisServer { redis in
            let history = history(redis)
            var ids: [String] = []
            for number in 1...4 {
                ids.append(
                    try await history.append(
                        try ServerSentEvent(type: "tick", data: "\(number)\nline", retry: 5)))
            }
            let numeric = ids.map { $0.split(separator: "-").compactMap { UInt64($0) } }
            #expect(zip(numeric, numeric.dropFirst()).allSatisfy { $0.lexicographicallyPrecedes($1) })
            let after = try await history.events(after: ids[1])
            #expect(after?.map(\.id) == Array(ids[2...]))
            #expect(
                after?.first == (try ServerSentEvent(type: "tick", data: "3\nline", id: ids[2], retry: 5)))
            #expect(try await history.events(after: ids[3]) == [])
            #expect(try await history.events(after: "0-1") == nil)
            #expect(try await history.events(after: "not-an-id") == nil)
            #expect(try await history.events(after: nil)?.map(\.id) == ids)
            await history.close()
        }
    }

    @Test("`MAXLEN ~` keeps more than maxLength entries: a replay still reaches the newest event, no gap")
    func approximateTrimmingLeavesNoGap() async throws {
        try await withRedisServer { redis in
            // maxLength 10 with `~`: Redis trims whole macro nodes (100 entries by default), so the stream holds
            // far more than 11 entries after 150 appends; a read capped at maxLength + 1 would stop short.
            let history = history(redis, maxLength: 10)
            var ids: [String] = []
            for number in 1...150 { ids.append(try await history.append(ServerSentEvent(data: "\(number)"))) }
            let all = try #require(try await history.events(after: nil))
            #expect(all.map(\.id) == Array(ids.suffix(10)))
            let firstKept = try #require(try await RedisConnection.connect(
                RedisConfiguration(host: "127.0.0.1", port: redis.port)).xrange(key: "events", count: 1).first?.id)
            let index = try #require(ids.firstIndex(of: firstKept))
            #expect(ids.count - index > 11)
            let replay = try #require(try await history.events(after: firstKept))
            #expect(replay.map(\.id) == Array(ids[(index + 1)...]))
            await history.close()
        }
    }

    @Test(
        "bad input keeps the shared connection: an ID past 64 bits is unknown, an error reply is only that call's"
    )
    func badInputKeepsTheConnection() async throws {
        try await withRedisServer { redis in
            let history = history(redis)
            let probe = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: redis.port))
            func connectionsReceived() async throws -> Int {
                let info = try await probe.send(RESPCommand("INFO", "stats")).string ?? ""
                let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_connections_received:") }
                return Int(line?.split(separator: ":").last ?? "") ?? -1
            }
            let first = try await history.append(try ServerSentEvent(data: "one", id: "x"))
            let before = try await connectionsReceived()
            // Digits, but past UInt64: Redis would answer an error; the history treats the ID as unknown.
            #expect(try await history.events(after: "99999999999999999999-0") == nil)
            #expect(try await history.events(after: "1-18446744073709551616") == nil)
            // An error reply (the key holds a string now): that call fails, the connection stays.
            _ = try await probe.send(RESPCommand("SET", "events-wrong", "x"))
            let wrong = RedisEventHistory(
                configuration: .init(redis: RedisConfiguration(host: "127.0.0.1", port: redis.port), key: "events-wrong"))
            _ = try? await wrong.append(try ServerSentEvent(data: "refused", id: "x"))
            let wrongBefore = try await connectionsReceived()
            await #expect(throws: RedisError.self) { _ = try await wrong.append(try ServerSentEvent(data: "no", id: "x")) }
            _ = try? await wrong.events(after: "1-0")
            #expect(try await connectionsReceived() == wrongBefore)
            await wrong.close()
            // The first history's connection was never replaced.
            #expect(try await history.events(after: first)?.isEmpty == true)
            #expect(try await connectionsReceived() == before + 1)
            await history.close()
            await probe.close()
        }
    }

    @Test(
        "Redis down: events are still sent live, without an ID, and counted; a resume gets live events only"
    )
    func redisDown() async throws {
        let port = try await RedisServerProcess.freePort()
        let history = RedisEventHistory(
            configuration: .init(
                redis: RedisConfiguration(host: "127.0.0.1", port: port), key: "events",
                timeout: .seconds(1))
        )
        let broadcaster = EventStreamBroadcaster(sharedHistory: history)
        try await server(broadcaster).withRunning { server in
            async let live = events(port: server.port, lastEventID: "1-0", count: 1)
            #expect(await eventually { broadcaster.subscriberCount == 1 })
            // The replay read failed (counted) and the stream is live.
            #expect(await eventually { broadcaster.sharedHistoryFailures == 1 })
            let id = await broadcaster.publishShared(try ServerSentEvent(data: "still here", id: "7"))
            #expect(id == nil)
            let got = try await live
            #expect(got.map(\.data) == ["still here"])
            #expect(got.map(\.lastEventID) == ["1-0"])  // no id field: the client keeps its last ID
            #expect(broadcaster.sharedHistoryFailures == 2)
        }
    }
}
