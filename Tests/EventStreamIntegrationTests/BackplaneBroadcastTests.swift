import Backplane
import NIOConcurrencyHelpers
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// ``EventStreamBroadcaster`` with a backplane: live events of one server reach the streams of the others, once
/// each and in order, also while a resuming stream's shared-history replay is being read.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct BackplaneBroadcastTests {
    /// Runs `body` with two broadcasters (servers "a" and "b") on one in-process backplane, each running and each
    /// serving its own ``Server`` on `/b`.
    func withTwoServers(
        sharedHistory: (any EventHistory)? = nil,
        _ body: @Sendable (EventStreamBroadcaster, Server, EventStreamBroadcaster, Server) async throws -> Void
    ) async throws {
        let bus = InProcessBackplane.Bus()
        let a = EventStreamBroadcaster(
            sharedHistory: sharedHistory, backplane: InProcessBackplane(serverId: "a", bus: bus), scope: "/b")
        let b = EventStreamBroadcaster(
            sharedHistory: sharedHistory, backplane: InProcessBackplane(serverId: "b", bus: bus), scope: "/b")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            // The broadcasters run until cancelled: cancel them however the body ends.
            defer { group.cancelAll() }
            // Both scopes are registered once B receives A's events: probes, before any stream exists.
            var probes = 0
            while b.backplaneStatistics?.received == 0, probes < 500 {
                a.publish(try ServerSentEvent(type: "probe", data: ""))
                probes += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(b.backplaneStatistics?.received ?? 0 > 0)
            let sent = probes
            let drained = await eventually { a.backplaneStatistics?.published == sent }
            try #require(drained)
            try await makeServer([EventStreamRoute(path: "/b", handler: .broadcast(a))]).withRunning { serverA in
                try await makeServer([EventStreamRoute(path: "/b", handler: .broadcast(b))]).withRunning { serverB in
                    try await body(a, serverA, b, serverB)
                }
            }
        }
    }

    @Test("a live event of server A reaches a stream on server B once, and A's own stream once, in order")
    func liveAcrossServers() async throws {
        try await withTwoServers { a, serverA, b, serverB in
            let probes = a.backplaneStatistics?.published ?? 0
            let received = b.backplaneStatistics?.received ?? 0
            let onA = try await rawStream(serverA, "/b")
            let onB = try await rawStream(serverB, "/b")
            #expect(await eventually { a.subscriberCount == 1 && b.subscriberCount == 1 })
            for number in 1...10 { a.publish(try ServerSentEvent(data: "a\(number)", id: "a\(number)")) }
            // B's stream has all of A's events before B publishes (per-publisher order, not a global one).
            #expect(await waitForEvents(onB, 10)?.events.count == 10)
            b.publish(try ServerSentEvent(data: "b1", id: "b1"))
            // Each side's last event is the other side's: a duplicate would come before it and show up here.
            let expected = (1...10).map { "a\($0)" } + ["b1"]
            #expect(await waitForEvents(onA, 11)?.events.map(\.data) == expected)
            #expect(await waitForEvents(onB, 11)?.events.map(\.data) == expected)
            #expect(await waitForEvents(onB, 11)?.events.map(\.lastEventID) == expected)
            #expect(await eventually { a.backplaneStatistics?.published == probes + 10 })
            #expect(b.backplaneStatistics?.published == 1)
            #expect(a.backplaneStatistics?.received == 1)
            #expect(b.backplaneStatistics?.received == received + 10)
            #expect(a.backplaneStatistics?.dropped == 0 && a.backplaneStatistics?.failed == 0)
            // Without a shared history, B keeps A's events in its own history: a client resumes on B.
            #expect(b.historyIDs.suffix(3) == ["a9", "a10", "b1"])
            let resumed = try await rawStream(serverB, "/b", ["Last-Event-ID: a8"])
            #expect(await waitForEvents(resumed, 3)?.events.map(\.data) == ["a9", "a10", "b1"])
            for client in [onA, onB, resumed] { await client.close() }
        }
    }

    @Test(
        "backplane events arriving during a stream's shared-history replay: neither duplicated nor lost",
        arguments: [true, false]
    )
    func resumeWhileBackplaneEventsArrive(readBeforeEventsArrive: Bool) async throws {
        let history = GatedHistory(readBeforeGate: readBeforeEventsArrive)
        try await withTwoServers(sharedHistory: history) { a, _, b, serverB in
            let received = b.backplaneStatistics?.received ?? 0
            for number in 1...3 { await a.publishShared(ServerSentEvent(data: "\(number)")) }
            history.close()
            // A client resumes on B after event 1; B's replay read waits at the gate.
            let client = try await rawStream(serverB, "/b", ["Last-Event-ID: 1"])
            #expect(await eventually { history.waitingReads == 1 })
            // Meanwhile A publishes 4 and 5: they reach B over the backplane and are held for the stream. The
            // replay holds them too when it is read after they were appended (readBeforeEventsArrive false).
            for number in 4...5 { await a.publishShared(ServerSentEvent(data: "\(number)")) }
            #expect(await eventually { b.backplaneStatistics?.received == received + 5 })
            history.open()
            #expect(await waitForEvents(client, 4)?.events.map(\.data) == ["2", "3", "4", "5"])
            await a.publishShared(ServerSentEvent(data: "6"))
            let events = await waitForEvents(client, 5)?.events
            #expect(events?.map(\.data) == ["2", "3", "4", "5", "6"])
            #expect(events?.map(\.lastEventID) == ["2", "3", "4", "5", "6"])
            #expect(a.sharedHistoryFailures == 0 && b.sharedHistoryFailures == 0)
            await client.close()
        }
    }

    @Test("an event the client already has (its Last-Event-ID) that arrives late over the backplane is not resent")
    func lateBackplaneEventNotResent() async throws {
        let history = GatedHistory(readBeforeGate: false)
        for number in 1...4 { _ = try await history.append(ServerSentEvent(data: "\(number)")) }
        let b = EventStreamBroadcaster(sharedHistory: history)
        try await makeServer([EventStreamRoute(path: "/b", handler: .broadcast(b))]).withRunning { server in
            history.close()
            // The client saw event 4 on server A and resumes on B before A's publication of 4 reached B.
            let client = try await rawStream(server, "/b", ["Last-Event-ID: 4"])
            #expect(await eventually { history.waitingReads == 1 })
            for number in 4...5 {
                let event = try ServerSentEvent(data: "\(number)", id: "\(number)")
                b.receive(
                    BackplaneMessage(
                        target: .all,
                        payloads: [
                            .init(
                                encoding: EventStreamBroadcaster.backplaneEventEncoding,
                                bytes: EventStreamEncoder.encode(event)),
                            .init(encoding: EventStreamBroadcaster.backplaneIDEncoding, bytes: Array("\(number)".utf8)),
                        ]
                    ))
            }
            history.open()
            b.publish(ServerSentEvent(data: "end"))
            #expect(await waitForEvents(client, 2)?.events.map(\.data) == ["5", "end"])
            await client.close()
        }
    }

    @Test("with an unreachable broker the events stay local and are counted as failed, never retried")
    func brokerDown() async throws {
        let a = EventStreamBroadcaster(backplane: FailingBackplane(), scope: "/b")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            defer { group.cancelAll() }
            try await makeServer([EventStreamRoute(path: "/b", handler: .broadcast(a))]).withRunning { server in
                let client = try await rawStream(server, "/b")
                #expect(await eventually { a.subscriberCount == 1 })
                for number in 1...3 { a.publish(ServerSentEvent(data: "\(number)")) }
                #expect(await waitForEvents(client, 3)?.events.map(\.data) == ["1", "2", "3"])
                #expect(await eventually { a.backplaneStatistics?.failed == 3 })
                #expect(a.backplaneStatistics?.published == 0)
                await client.close()
            }
        }
    }

    @Test("the publish queue is bounded: past its limit new events are dropped for the other servers and counted")
    func publishQueueBounded() async throws {
        // Not running: nothing takes the queue.
        let a = EventStreamBroadcaster(
            configuration: .init(backplanePublishQueueLimit: 3),
            backplane: InProcessBackplane(serverId: "a"),
            scope: "/b"
        )
        for number in 1...5 { a.publish(ServerSentEvent(data: "\(number)")) }
        #expect(a.backplaneStatistics?.queued == 3)
        #expect(a.backplaneStatistics?.dropped == 2)
        #expect(a.historyIDs.count == 5)  // local delivery and history are unaffected
    }
}

/// A shared history in memory whose reads can be made to wait at a gate, reading the events before or after it.
final class GatedHistory: EventHistory {
    private struct State {
        var events: [ServerSentEvent] = []
        var closed = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())
    private let readBeforeGate: Bool

    init(readBeforeGate: Bool) {
        self.readBeforeGate = readBeforeGate
    }

    var waitingReads: Int { state.withLockedValue { $0.waiting.count } }

    /// Later reads wait at the gate until ``open()``.
    func close() {
        state.withLockedValue { $0.closed = true }
    }

    func open() {
        let waiting = state.withLockedValue { state in
            state.closed = false
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func append(_ event: ServerSentEvent) async throws -> String {
        let count = state.withLockedValue { $0.events.count }
        let id = "\(count + 1)"
        let recorded = try ServerSentEvent(type: event.type, data: event.data, id: id, retry: event.retry)
        state.withLockedValue { $0.events.append(recorded) }
        return id
    }

    func events(after id: String?) async throws -> [ServerSentEvent]? {
        let before = readBeforeGate ? read(after: id) : nil
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = state.withLockedValue { state in
                if state.closed { state.waiting.append(continuation) }
                return state.closed
            }
            if !wait { continuation.resume() }
        }
        return readBeforeGate ? before : read(after: id)
    }

    private func read(after id: String?) -> [ServerSentEvent]? {
        state.withLockedValue { state in
            guard let id else { return state.events }
            guard let index = state.events.firstIndex(where: { $0.id == id }) else { return nil }
            return Array(state.events[(index + 1)...])
        }
    }
}

/// A backplane whose broker is never reachable.
final class FailingBackplane: Backplane {
    let serverId = "down"
    func register(scope: String, receiver: any BackplaneReceiver) async throws {
        throw BackplaneError(.unavailable, "down")
    }
    func unregister(scope: String) async {}
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {}
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {}
    func localGroupJoined(_ scope: String, group: String) async {}
    func localGroupLeft(_ scope: String, group: String) async {}
    func publish(_ message: BackplaneMessage, scope: String) async throws {
        throw BackplaneError(.unavailable, "down")
    }
    func requestGroupChange(
        _ change: GroupMembershipChange, connectionId: String, group: String, scope: String, timeout: Duration
    ) async throws {
        throw BackplaneError(.unavailable, "down")
    }
}
