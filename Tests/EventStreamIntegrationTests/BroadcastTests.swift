import EventSourceClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// ``EventStreamBroadcaster``: fan-out, the bounded replay history and its policies, slow readers.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct BroadcastTests {
    func publish(_ broadcaster: EventStreamBroadcaster, _ range: ClosedRange<Int>) throws {
        for number in range { broadcaster.publish(try ServerSentEvent(data: "\(number)", id: "\(number)")) }
    }

    func subscribe(_ server: Server, _ broadcaster: EventStreamBroadcaster, count: Int,
                   _ extra: [String] = []) async throws -> RawTestClient {
        let client = try await rawStream(server, "/b", extra)
        #expect(await eventually { broadcaster.subscriberCount == count })
        return client
    }

    @Test("every stream gets every live event, in order")
    func fanOut() async throws {
        let broadcaster = EventStreamBroadcaster()
        let route = EventStreamRoute(path: "/b", handler: .broadcast(broadcaster))
        try await makeServer([route]).withRunning { server in
            var clients: [RawTestClient] = []
            for index in 1...5 { clients.append(try await subscribe(server, broadcaster, count: index)) }
            try publish(broadcaster, 1...20)
            for client in clients {
                #expect(await waitForEvents(client, 20)?.events.map(\.data) == (1...20).map(String.init))
            }
            for client in clients { await client.close() }
            #expect(await eventually { broadcaster.subscriberCount == 0 })
        }
    }

    @Test("a client with a Last-Event-ID in the history gets exactly the events after it, then live ones")
    func resumeFromHistory() async throws {
        let broadcaster = EventStreamBroadcaster()
        let route = EventStreamRoute(path: "/b", handler: .broadcast(broadcaster))
        try await makeServer([route]).withRunning { server in
            try publish(broadcaster, 1...5)
            let client = try await subscribe(server, broadcaster, count: 1, ["Last-Event-ID: 2"])
            try publish(broadcaster, 6...6)
            #expect(await waitForEvents(client, 4)?.events.map(\.data) == ["3", "4", "5", "6"])
            // A new client without Last-Event-ID: live events only.
            let fresh = try await subscribe(server, broadcaster, count: 2)
            try publish(broadcaster, 7...7)
            #expect(await waitForEvents(fresh, 1)?.events.map(\.data) == ["7"])
        }
    }

    @Test("the history is bounded by count and by bytes")
    func historyBounds() throws {
        let byCount = EventStreamBroadcaster(configuration: .init(historyCount: 3))
        try publish(byCount, 1...10)
        #expect(byCount.historyIDs == ["8", "9", "10"])
        // Each event "data: N\nid: N\n\n" of one digit is 15 bytes: 40 bytes hold two.
        let byBytes = EventStreamBroadcaster(configuration: .init(historyCount: 100, historyBytes: 40))
        try publish(byBytes, 1...9)
        #expect(byBytes.historyIDs == ["8", "9"])
    }

    @Test("an ID older than the history: replay what is kept, live only, or an application event",
          arguments: ["replay", "live", "send"])
    func unknownID(policy: String) async throws {
        let reset = try ServerSentEvent(type: "reset", data: "reload")
        let unknown: EventStreamBroadcaster.UnknownIDPolicy =
            switch policy {
            case "replay": .replayHistory
            case "live": .liveOnly
            default: .send(reset)
            }
        let broadcaster = EventStreamBroadcaster(configuration: .init(historyCount: 3, unknownLastEventID: unknown))
        let route = EventStreamRoute(path: "/b", handler: .broadcast(broadcaster))
        try await makeServer([route]).withRunning { server in
            try publish(broadcaster, 1...10)
            let client = try await subscribe(server, broadcaster, count: 1, ["Last-Event-ID: 2"])
            try publish(broadcaster, 11...11)
            let expected: [String] =
                switch policy {
                case "replay": ["8", "9", "10", "11"]
                case "live": ["11"]
                default: ["reload", "11"]
                }
            let response = await waitForEvents(client, expected.count)
            #expect(response?.events.map(\.data) == expected)
            if policy == "send" { #expect(response?.events.first?.type == "reset") }
        }
    }

    @Test("a stream that never reads is dropped at its buffer limit; the others keep going")
    func slowReaderDropped() async throws {
        let broadcaster = EventStreamBroadcaster(configuration: .init(historyCount: 10))
        var configuration = EventStreamRoute.Configuration(heartbeatInterval: nil)
        configuration.maxBufferedBytes = 8 * 1024
        let route = EventStreamRoute(path: "/b", configuration: configuration, handler: .broadcast(broadcaster))
        try await makeServer([route]).withRunning { server in
            let stuck = try await rawStream(server, "/b", autoRead: false, receiveBufferSize: 4096)
            #expect(await eventually { broadcaster.subscriberCount == 1 })
            // The healthy reader is our EventSource client (it keeps no bytes, unlike the raw test client).
            var healthy = try EventSource(url: "http://127.0.0.1:\(server.port)/b").makeAsyncIterator()
            #expect(try await healthy.next() == .open)
            #expect(await eventually { broadcaster.subscriberCount == 2 })
            // 4000 events of 4 kB: 16 MB, more than the kernel's socket buffers take for the stuck client. They
            // go out in batches of 10 (40 kB, well within what the healthy client's socket buffers hold), each
            // read by the healthy client before the next is published, so that a busy machine slowing that
            // client down can never push it past the 8 KiB limit too.
            let payload = String(repeating: "y", count: 4000)
            var received = 0
            for batch in 0..<400 {
                for number in (batch * 10 + 1)...(batch * 10 + 10) {
                    broadcaster.publish(try ServerSentEvent(data: payload, id: "\(number)"))
                }
                while received < batch * 10 + 10, let output = try await healthy.next() {
                    if case .event(let event) = output, event.data == payload { received += 1 }
                }
            }
            #expect(received == 4000)
            #expect(await eventually(timeout: .seconds(10)) { broadcaster.subscriberCount == 1 })
            await stuck.close()
        }
    }

    /// Blocks the group's only event loop for `duration`; returns once the block has begun.
    func blockEventLoop(_ group: MultiThreadedEventLoopGroup, for duration: Duration) async {
        let started = NIOLockedValueBox(false)
        group.next().execute {
            started.withLockedValue { $0 = true }
            Thread.sleep(forTimeInterval: Double(duration.components.seconds)
                + Double(duration.components.attoseconds) / 1e18)
        }
        _ = await eventually { started.withLockedValue { $0 } }
    }

    /// A server on one event loop with a `/b` broadcast route whose loop queue holds 64 KiB and whose streams
    /// buffer 1 MiB (so only the loop queue's limit can close them).
    func oneLoopServer() -> (MultiThreadedEventLoopGroup, EventStreamBroadcaster, Server) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let broadcaster = EventStreamBroadcaster(configuration: .init(maxQueuedBytesPerEventLoop: 64 * 1024))
        var configuration = EventStreamRoute.Configuration(heartbeatInterval: nil)
        configuration.maxBufferedBytes = 1 << 20
        let route = EventStreamRoute(path: "/b", configuration: configuration, handler: .broadcast(broadcaster))
        var serverConfiguration = Server.Configuration(port: 0)
        serverConfiguration.shutdownGracePeriod = .seconds(1)
        let server = Server(configuration: serverConfiguration, routes: [], eventStreamRoutes: [route], group: group)
        return (group, broadcaster, server)
    }

    @Test("an event loop that falls behind the publisher: queued events are written in order up to the limit")
    func busyLoopCatchesUp() async throws {
        let (group, broadcaster, server) = oneLoopServer()
        try await server.withRunning { server in
            let client = try await subscribe(server, broadcaster, count: 1)
            let payload = String(repeating: "z", count: 1000)
            await blockEventLoop(group, for: .milliseconds(300))
            // 40 events of about 1 kB, published while the loop is blocked: within the 64 KiB queue.
            for number in 1...40 { broadcaster.publish(try ServerSentEvent(data: payload, id: "\(number)")) }
            let response = await waitForEvents(client, 40)
            #expect(response?.events.map(\.lastEventID) == (1...40).map { "\($0)" })
            #expect(broadcaster.subscriberCount == 1)
            await client.close()
        }
        try await group.shutdownGracefully()
    }

    @Test("one event larger than the loop queue's limit, on an idle loop, is delivered (only a backlog overloads)")
    func largeEventOnIdleLoop() async throws {
        let (group, broadcaster, server) = oneLoopServer()
        try await server.withRunning { server in
            let client = try await subscribe(server, broadcaster, count: 1)
            // 100 kB: past the 64 KiB loop queue, within the stream's 1 MiB buffer.
            let payload = String(repeating: "w", count: 100_000)
            broadcaster.publish(try ServerSentEvent(data: payload, id: "big"))
            let response = await waitForEvents(client, 1)
            #expect(response?.events.map(\.lastEventID) == ["big"])
            #expect(response?.events.first?.data.count == 100_000)
            #expect(broadcaster.subscriberCount == 1)
            await client.close()
        }
        try await group.shutdownGracefully()
    }

    @Test("an event loop far behind the publisher: past the queue limit its streams close, nothing piles up")
    func overloadedLoopClosesItsStreams() async throws {
        let (group, broadcaster, server) = oneLoopServer()
        try await server.withRunning { server in
            let first = try await subscribe(server, broadcaster, count: 1)
            let second = try await subscribe(server, broadcaster, count: 2)
            let payload = String(repeating: "z", count: 1000)
            await blockEventLoop(group, for: .milliseconds(300))
            // 200 events of about 1 kB while the loop is blocked: past the 64 KiB queue.
            for number in 1...200 { broadcaster.publish(try ServerSentEvent(data: payload, id: "\(number)")) }
            #expect(await eventually(timeout: .seconds(10)) { broadcaster.subscriberCount == 0 })
            for client in [first, second] {
                let bytes = await client.wait(timeout: .seconds(5)) { _ in false }
                #expect((StreamResponse(bytes)?.events.count ?? 0) < 200)
                await client.close()
            }
            // The server still serves: a new stream gets the history's events from its Last-Event-ID.
            let again = try await subscribe(server, broadcaster, count: 1, ["Last-Event-ID: 195"])
            #expect(await waitForEvents(again, 5)?.events.map(\.lastEventID) == ["196", "197", "198", "199", "200"])
            await again.close()
        }
        try await group.shutdownGracefully()
    }

    @Test("a writer subscribed after its client left is not kept by the broadcaster")
    func subscribeAfterClose() async throws {
        let broadcaster = EventStreamBroadcaster()
        let closed = Counter()
        let route = EventStreamRoute(
            path: "/late",
            handler: .callback { _, writer in
                writer.onClose { closed.increment() }
                // E.g. after an asynchronous check: the client may be gone by then.
                writer.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(400)) {
                    broadcaster.subscribe(writer)
                }
            })
        try await makeServer([route]).withRunning { server in
            let client = try await rawStream(server, "/late")
            _ = await client.wait(timeout: .seconds(5)) { StreamResponse($0) != nil }
            await client.close()
            #expect(await eventually { closed.value == 1 })
            try await Task.sleep(for: .milliseconds(600))
            #expect(broadcaster.subscriberCount == 0)
        }
    }
}
