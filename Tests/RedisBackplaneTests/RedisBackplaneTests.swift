import RedisTestSupport
import Backplane
import BackplaneCodec
import MetricsTestKit
import NIOConcurrencyHelpers
import RESP
import RedisBackplane
import RedisClient
import Testing

/// What one server's scope received.
final class RecordingReceiver: BackplaneReceiver {
    struct Change: Sendable, Hashable {
        var change: GroupMembershipChange
        var connectionId: String
        var group: String
    }

    private let box = NIOLockedValueBox<(messages: [BackplaneMessage], changes: [Change])>(([], []))
    /// The connections `applyGroupChange` accepts.
    let held: Set<String>

    init(held: Set<String> = []) {
        self.held = held
    }

    var messages: [BackplaneMessage] { box.withLockedValue { $0.messages } }
    var changes: [Change] { box.withLockedValue { $0.changes } }
    /// The text of each message's `text` payload.
    var texts: [String] { messages.map { String(decoding: $0.payload(for: "text") ?? [], as: UTF8.self) } }

    func receive(_ message: BackplaneMessage) {
        box.withLockedValue { $0.messages.append(message) }
    }

    func applyGroupChange(_ change: GroupMembershipChange, connectionId: String, group: String) async -> Bool {
        guard held.contains(connectionId) else { return false }
        box.withLockedValue { $0.changes.append(Change(change: change, connectionId: connectionId, group: group)) }
        return true
    }

    /// Waits (at most `timeout`) until a message with text `text` arrived.
    func waitFor(_ text: String, timeout: Duration = .seconds(5)) async throws {
        try await eventually("'\(text)' received", timeout: timeout) { self.texts.contains(text) }
    }
}

/// Polls `condition` every 10 ms; fails after `timeout`.
func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("not within \(timeout): \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

func text(_ target: BackplaneTarget, _ text: String, excluding: [String] = []) -> BackplaneMessage {
    BackplaneMessage(target: target, excludedConnectionIds: excluding, payloads: [.init(encoding: "text", bytes: Array(text.utf8))])
}

/// Runs `count` backplanes (`server-0`…) on `server` while `body` runs (at most 30 s), each connected first.
func withBackplanes<T: Sendable>(
    _ server: RedisServerProcess,
    count: Int,
    metrics: TestMetrics? = nil,
    _ change: @Sendable (inout RedisBackplaneConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable ([RedisBackplane]) async throws -> T
) async throws -> T {
    let backplanes = (0..<count).map { index in
        var configuration = RedisBackplaneConfiguration(
            redis: RedisConfiguration(host: "127.0.0.1", port: server.port),
            prefix: "test",
            reconnectBackoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200)),
            connectTimeout: .seconds(2)
        )
        if let metrics { configuration.metricsFactory = metrics }
        change(&configuration)
        return RedisBackplane(serverId: "server-\(index)", configuration: configuration)
    }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        for backplane in backplanes {
            group.addTask {
                try await backplane.run()
                return nil
            }
        }
        for backplane in backplanes { try await backplane.waitUntilConnected(timeout: .seconds(10)) }
        let result = try await withTimeout(.seconds(30)) { try await body(backplanes) }
        group.cancelAll()
        return result
    }
}

/// How many subscribers `channel` has (`PUBSUB NUMSUB`).
func subscribers(_ channel: String, on server: RedisServerProcess) async throws -> Int {
    let redis = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
    let reply: RESPValue
    do {
        reply = try await redis.run(RESPCommand("PUBSUB", "NUMSUB", channel))
    } catch {
        await redis.close()
        throw error
    }
    await redis.close()
    guard let elements = reply.elements, elements.count == 2, let count = elements[1].integer else {
        throw TestFailure("PUBSUB NUMSUB: \(reply)")
    }
    return Int(count)
}

@Suite(
    "RedisBackplane against redis-server",
    .enabled(if: RedisServerProcess.binary != nil, Comment(rawValue: RedisServerProcess.missingMessage)),
    .serialized
)
struct RedisBackplaneTests {
    @Test("all, group, connection and user messages reach exactly the servers with local interest, once, never self")
    func delivery() async throws {
        try await withRedisServer { server in
            try await withBackplanes(server, count: 3) { backplanes in
                let (a, b, c) = (backplanes[0], backplanes[1], backplanes[2])
                let receivers = [RecordingReceiver(), RecordingReceiver(), RecordingReceiver()]
                for (backplane, receiver) in zip(backplanes, receivers) {
                    try await backplane.register(scope: "chat", receiver: receiver)
                }
                await b.connectionAdded("chat", connectionId: "b1", userId: "alice")
                await c.connectionAdded("chat", connectionId: "c1", userId: "alice")
                await c.connectionAdded("chat", connectionId: "c2", userId: "bob")
                await b.localGroupJoined("chat", group: "room")

                try await a.publish(text(.all, "to all", excluding: ["b1"]), scope: "chat")
                try await a.publish(text(.group("room"), "to room"), scope: "chat")
                try await a.publish(text(.connection("c2"), "to c2"), scope: "chat")
                try await a.publish(text(.user("alice"), "to alice"), scope: "chat")
                try await a.publish(text(.user("nobody"), "to nobody"), scope: "chat")
                try await a.publish(text(.all, "fence a"), scope: "chat")
                // Redis writes one publisher's messages to each subscriber in publish order: after the fence,
                // nothing of the above can still come.
                try await receivers[1].waitFor("fence a")
                try await receivers[2].waitFor("fence a")
                #expect(receivers[1].texts == ["to all", "to room", "to alice", "fence a"])
                #expect(receivers[1].messages.first?.excludedConnectionIds == ["b1"])
                #expect(receivers[2].texts == ["to all", "to c2", "to alice", "fence a"])
                // A saw its own publications on `all` and ignored them.
                try await b.publish(text(.all, "fence b"), scope: "chat")
                try await receivers[0].waitFor("fence b")
                #expect(receivers[0].texts == ["fence b"])
                #expect(a.statistics.ownMessagesIgnored == 2)
                #expect(b.statistics.delivered == 4)
                #expect(a.statistics.published == 6)
                // Another scope on the same servers is separate.
                await #expect(throws: BackplaneError(.unknownScope, "Scope 'other' is not registered on server 'server-0'.")) {
                    try await a.publish(text(.all, "x"), scope: "other")
                }
            }
        }
    }

    @Test("a server subscribes to a group only between its first join and last leave; user channels are counted")
    func subscriptionsFollowPresence() async throws {
        try await withRedisServer { server in
            try await withBackplanes(server, count: 2) { backplanes in
                let (a, b) = (backplanes[0], backplanes[1])
                let receiver = RecordingReceiver()
                try await a.register(scope: "s", receiver: RecordingReceiver())
                try await b.register(scope: "s", receiver: receiver)
                let group = b.channels.group("g", scope: "s")
                #expect(try await subscribers(group, on: server) == 0)
                await b.localGroupJoined("s", group: "g")
                #expect(try await subscribers(group, on: server) == 1)
                try await a.publish(text(.group("g"), "while member"), scope: "s")
                try await receiver.waitFor("while member")
                await b.localGroupLeft("s", group: "g")
                #expect(try await subscribers(group, on: server) == 0)
                try await a.publish(text(.group("g"), "after leave"), scope: "s")
                try await a.publish(text(.all, "fence"), scope: "s")
                try await receiver.waitFor("fence")
                #expect(receiver.texts == ["while member", "fence"])

                let user = b.channels.user("u", scope: "s")
                await b.connectionAdded("s", connectionId: "1", userId: "u")
                await b.connectionAdded("s", connectionId: "2", userId: "u")
                #expect(try await subscribers(user, on: server) == 1)
                #expect(try await subscribers(b.channels.connection("2", scope: "s"), on: server) == 1)
                await b.connectionRemoved("s", connectionId: "1", userId: "u")
                #expect(try await subscribers(user, on: server) == 1)
                await b.connectionRemoved("s", connectionId: "2", userId: "u")
                #expect(try await subscribers(user, on: server) == 0)
                #expect(try await subscribers(b.channels.connection("2", scope: "s"), on: server) == 0)

                await b.unregister(scope: "s")
                #expect(try await subscribers(b.channels.all(scope: "s"), on: server) == 1)  // a's
            }
        }
    }

    @Test("a group change is applied and acknowledged by the holder; nobody holding it is a timeout error")
    func groupChanges() async throws {
        try await withRedisServer { server in
            try await withBackplanes(server, count: 3) { backplanes in
                let (a, b, c) = (backplanes[0], backplanes[1], backplanes[2])
                let receivers = [RecordingReceiver(held: ["a1"]), RecordingReceiver(), RecordingReceiver(held: ["c1"])]
                for (backplane, receiver) in zip(backplanes, receivers) {
                    try await backplane.register(scope: "hub", receiver: receiver)
                }
                await a.connectionAdded("hub", connectionId: "a1", userId: nil)
                await c.connectionAdded("hub", connectionId: "c1", userId: nil)

                try await a.requestGroupChange(.add, connectionId: "c1", group: "g", scope: "hub", timeout: .seconds(5))
                #expect(receivers[2].changes == [.init(change: .add, connectionId: "c1", group: "g")])
                try await b.requestGroupChange(.remove, connectionId: "c1", group: "g", scope: "hub", timeout: .seconds(5))
                #expect(receivers[2].changes.last == .init(change: .remove, connectionId: "c1", group: "g"))
                #expect(receivers[1].changes.isEmpty && receivers[0].changes.isEmpty)
                #expect(c.statistics.groupChangesApplied == 2)

                // Held locally: applied without Redis.
                try await a.requestGroupChange(.add, connectionId: "a1", group: "g", scope: "hub", timeout: .seconds(5))
                #expect(receivers[0].changes == [.init(change: .add, connectionId: "a1", group: "g")])

                do {
                    try await b.requestGroupChange(
                        .add, connectionId: "nowhere", group: "g", scope: "hub", timeout: .milliseconds(300))
                    Issue.record("no server holds 'nowhere', yet the change succeeded")
                } catch let error as BackplaneError {
                    #expect(error.kind == .acknowledgementTimeout)
                    #expect(error.reason.contains("nowhere"))
                }
                await #expect(throws: BackplaneError.self) {
                    try await b.requestGroupChange(.add, connectionId: "c1", group: "g", scope: "nope", timeout: .seconds(1))
                }
            }
        }
    }

    @Test("Redis killed and restarted: publish fails fast meanwhile, then reconnect, resubscribe, outage reported")
    func redisRestart() async throws {
        let server = try await RedisServerProcess.start()
        let metrics = TestMetrics()
        defer { server.stop() }
        try await withBackplanes(server, count: 2, metrics: metrics) { backplanes in
            let (a, b) = (backplanes[0], backplanes[1])
            let receiver = RecordingReceiver()
            try await a.register(scope: "s", receiver: RecordingReceiver())
            try await b.register(scope: "s", receiver: receiver)
            await b.connectionAdded("s", connectionId: "c", userId: "u")
            await b.localGroupJoined("s", group: "g")
            try await a.publish(text(.group("g"), "before"), scope: "s")
            try await receiver.waitFor("before")
            // A message the envelope cannot carry is refused by itself, not reported as an outage.
            let refused = await #expect(throws: BackplaneError.self) {
                try await a.publish(text(.group(String(repeating: "g", count: 2000)), "too long"), scope: "s")
            }
            #expect(refused?.kind == .messageRefused)
            #expect(a.statistics.isConnected)

            server.crash()
            try await eventually("both see the loss") { !a.statistics.isConnected && !b.statistics.isConnected }
            do {
                try await withTimeout(.seconds(1)) { try await a.publish(text(.all, "lost"), scope: "s") }
                Issue.record("publish succeeded without Redis")
            } catch let error as BackplaneError {
                #expect(error.kind == .unavailable)
            }
            #expect(a.statistics.publishFailuresWhileDisconnected == 1)
            // Meanwhile B's group and connection change: the resubscription must use what is needed now.
            await b.localGroupJoined("s", group: "h")

            let restarted = try await RedisServerProcess.start(port: server.port)
            defer { restarted.stop() }
            try await a.waitUntilConnected(timeout: .seconds(10))
            try await b.waitUntilConnected(timeout: .seconds(10))
            try await a.publish(text(.group("g"), "after g"), scope: "s")
            try await a.publish(text(.group("h"), "after h"), scope: "s")
            try await a.publish(text(.connection("c"), "after c"), scope: "s")
            try await a.publish(text(.user("u"), "after u"), scope: "s")
            try await receiver.waitFor("after u")
            #expect(receiver.texts == ["before", "after g", "after h", "after c", "after u"])
            for statistics in [a.statistics, b.statistics] {
                #expect(statistics.reconnects == 1)
                #expect(statistics.connectionLosses == 1)
                #expect(statistics.lastOutage.map { $0 > .zero } == true)
            }
            let timer = try metrics.expectTimer("redis_backplane_outage_duration")
            #expect(timer.values.count == 2)  // one per backplane (both share the factory)
            let failed = try metrics.expectCounter("redis_backplane_publish_failures_total", [("reason", "disconnected")])
            #expect(failed.totalValue == 1)
        }
    }

    @Test("Redis drops the subscriber over client-output-buffer-limit pubsub: it reconnects and reports it")
    func outputBufferLimit() async throws {
        try await withRedisServer { server in
            try await withBackplanes(server, count: 2) { backplanes in
                let (a, b) = (backplanes[0], backplanes[1])
                let receiver = RecordingReceiver()
                try await a.register(scope: "s", receiver: RecordingReceiver())
                try await b.register(scope: "s", receiver: receiver)
                await b.connectionAdded("s", connectionId: "victim", userId: nil)
                let admin = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
                try await admin.run(RESPCommand("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1"))
                // Messages of 256 KiB from a third "server": each alone is above the 64 KiB hard limit.
                let big = try BackplaneEnvelopeCodec().encode(
                    .message(
                        origin: "flooder", scope: "s", text(.connection("victim"), String(repeating: "x", count: 256 << 10))))
                for _ in 0..<8 { _ = try await admin.publish(big, to: b.channels.connection("victim", scope: "s")) }
                await admin.close()
                try await eventually("B loses its subscriber and reconnects") {
                    b.statistics.connectionLosses >= 1 && b.statistics.isConnected
                }
                #expect(b.statistics.reconnects >= 1)
                #expect(b.statistics.lastOutage != nil)
                // Resubscribed to the connection's channel too.
                try await a.publish(text(.connection("victim"), "after"), scope: "s")
                try await receiver.waitFor("after")
                #expect(a.statistics.connectionLosses == 0)
            }
        }
    }

    @Test("a Redis that does not answer: publish times out with a clear error instead of hanging")
    func slowRedis() async throws {
        try await withRedisServer { server in
            try await withBackplanes(server, count: 2, { $0.publishTimeout = .milliseconds(300) }) { backplanes in
                let (a, b) = (backplanes[0], backplanes[1])
                let receiver = RecordingReceiver()
                try await a.register(scope: "s", receiver: RecordingReceiver())
                try await b.register(scope: "s", receiver: receiver)
                let admin = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
                // Every other client's commands wait 1.5 s.
                try await admin.run(RESPCommand("CLIENT", "PAUSE", "1500", "ALL"))
                do {
                    try await withTimeout(.seconds(3)) { try await a.publish(text(.all, "slow"), scope: "s") }
                    Issue.record("publish returned while Redis was paused")
                } catch let error as BackplaneError {
                    #expect(error.kind == .unavailable)
                    #expect(error.reason.contains("did not complete within"))
                }
                #expect(a.statistics.publishFailures == 1)
                try await admin.run(RESPCommand("CLIENT", "UNPAUSE"))
                await admin.close()
                // The timed-out publisher counts as lost and is replaced, rather than kept for every later
                // publication to wait on.
                try await eventually("A replaces the connection that timed out") {
                    a.statistics.connectionLosses == 1 && a.statistics.reconnects >= 1 && a.statistics.isConnected
                }
                try await a.publish(text(.all, "fast"), scope: "s")
                try await receiver.waitFor("fast")
            }
        }
    }

    @Test("publish and register while never connected fail fast with .unavailable; malformed messages are counted")
    func unavailableAndMalformed() async throws {
        let lonely = RedisBackplane(
            serverId: "x",
            configuration: .init(redis: RedisConfiguration(host: "127.0.0.1", port: 1))
        )
        await #expect(throws: BackplaneError.self) { try await lonely.register(scope: "s", receiver: RecordingReceiver()) }
        await #expect(throws: BackplaneError.self) { try await lonely.publish(text(.all, "x"), scope: "s") }
        #expect(lonely.statistics.publishFailuresWhileDisconnected == 1)

        try await withRedisServer { server in
            try await withBackplanes(server, count: 2) { backplanes in
                let (a, b) = (backplanes[0], backplanes[1])
                let receiver = RecordingReceiver()
                try await a.register(scope: "s", receiver: RecordingReceiver())
                try await b.register(scope: "s", receiver: receiver)
                let admin = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
                _ = try await admin.publish(Array("not an envelope".utf8), to: b.channels.all(scope: "s"))
                _ = try await admin.publish([1, 0, 0], to: b.channels.all(scope: "s"))
                await admin.close()
                try await a.publish(text(.all, "fence"), scope: "s")
                try await receiver.waitFor("fence")
                #expect(b.statistics.malformedMessages == 2)
                #expect(receiver.texts == ["fence"])
            }
        }
    }
}
