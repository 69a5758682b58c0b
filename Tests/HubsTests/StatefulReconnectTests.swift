import HubProtocol
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

@testable import Hubs

/// Stateful reconnect on the wire (HubProtocol.md "Stateful Reconnect"), with a raw client: negotiate, the
/// version rule for Ack and Sequence, acknowledgements, the replay after a dropped WebSocket, duplicates, the
/// replay buffer's limit and the disconnect timeout.
@Suite struct StatefulReconnectTests {
    static func configuration(
        bufferSize: Int = 100_000, disconnectTimeout: Duration = .seconds(15)
    ) -> HubConfiguration {
        var configuration = HubConfiguration()
        configuration.allowStatefulReconnects = true
        configuration.statefulReconnectBufferSize = bufferSize
        configuration.statefulReconnectDisconnectTimeout = disconnectTimeout
        return configuration
    }

    /// Negotiates with `useStatefulReconnect=true`; the token and the public id.
    static func negotiateStateful(_ port: Int) async throws -> (token: String, connectionId: String, stateful: Bool) {
        let response = try #require(try await negotiate(port, query: "?negotiateVersion=1&useStatefulReconnect=true"))
        guard case .connection(let connection) = try NegotiateResponse.parse(Array(response.rest)) else {
            throw NegotiateFailed()
        }
        return (connection.transportId, connection.connectionId, connection.useStatefulReconnect)
    }

    @Test func negotiateAnswersStatefulOnlyWhenAllowedAndAsked() async throws {
        try await withHub(configuration: Self.configuration()) { _, port in
            #expect(try await Self.negotiateStateful(port).stateful)
            let plain = try #require(try await negotiate(port, query: "?negotiateVersion=1"))
            #expect(!String(decoding: plain.rest, as: UTF8.self).contains("useStatefulReconnect"))
            // Version 0: the id a resume would present is the public connection id; never stateful.
            let versionZero = try #require(try await negotiate(port, query: "?useStatefulReconnect=true"))
            #expect(!String(decoding: versionZero.rest, as: UTF8.self).contains("useStatefulReconnect"))
        }
        try await withHub { _, port in
            let answer = try await Self.negotiateStateful(port)
            #expect(!answer.stateful)
        }
    }

    @Test func versionOneHandshakeGetsNoAckOrSequence() async throws {
        try await withHub(configuration: Self.configuration()) { _, port in
            let (token, _, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 1) { client in
                try await client.send(invocation("1", "Echo", ["a"]))
                // Sleep 1.5 s on the server: an Ack would have been due meanwhile.
                try await client.send(invocation("2", "Sleep", [1500]))
                #expect(await client.waitFor { $0.contains(where: { $0.isCompletion("2") }) })
                #expect(!client.messages.contains(where: { $0.isAckOrSequence }))
            }
        }
    }

    @Test func acknowledgesAndReplaysAfterADroppedWebSocket() async throws {
        try await withHub(configuration: Self.configuration()) { _, port in
            let (token, connectionId, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 2) { first in
                // Server ids: 1 Welcome, 2 and 3 the completions. Client ids: 1 and 2.
                try await first.send(invocation("1", "Remember", ["kept"]))
                try await first.send(invocation("2", "Echo", ["two"]))
                #expect(await first.waitFor { $0.contains(where: { $0.isCompletion("2") }) })
                // The server acknowledges our two messages within about a second.
                #expect(await first.waitFor(timeout: .seconds(5)) { $0.contains(.ack(sequenceId: 2)) })
                // We acknowledge Welcome and the first completion only; then the TCP connection drops.
                try await first.send(.ack(sequenceId: 2))
                try await Task.sleep(for: .milliseconds(100))
                first.drop()
            }
            #expect(TestHub.disconnects.withLockedValue { $0[connectionId] } == nil)
            try await RecordingClient.with(port, id: token, version: nil) { second in
                // We resend our message 2 (a duplicate, dropped) and send 3.
                try await second.send(.sequence(sequenceId: 2))
                try await second.send(invocation("2", "Echo", ["two again"]))
                try await second.send(invocation("3", "Recall", []))
                #expect(await second.waitFor { $0.contains(where: { $0.isCompletion("3") }) })
                let messages = second.messages.filter { if case .ack = $0 { false } else { true } }
                // The server's Sequence names its oldest unacknowledged message (3), which follows.
                #expect(messages.first == .sequence(sequenceId: 3))
                #expect(messages.count == 3)
                if messages.count == 3 {
                    #expect(messages[1] == .completion(.init(invocationId: "2", result: .value(.json("two")))))
                    #expect(messages[2] == .completion(.init(invocationId: "3", result: .value(.json("kept")))))
                }
                #expect(TestHub.disconnects.withLockedValue { $0[connectionId] } == nil)
            }
            #expect(await eventually { TestHub.disconnects.withLockedValue { $0[connectionId] } != nil })
        }
    }

    @Test func ackForAnUnknownIdIsHarmlessAndASequenceAheadIsAnError() async throws {
        try await withHub(configuration: Self.configuration()) { _, port in
            let (token, _, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 2) { client in
                try await client.send(.ack(sequenceId: 1_000))
                try await client.send(invocation("1", "Echo", ["still here"]))
                #expect(await client.waitFor { $0.contains(where: { $0.isCompletion("1") }) })
                // One message received so far: a Sequence announcing id 5 would skip 2-4.
                try await client.send(.sequence(sequenceId: 5))
                #expect(await client.waitFor { $0.contains(where: { if case .close = $0 { true } else { false } }) })
            }
        }
    }

    @Test func replayBufferLimitMakesTheServerWaitForAnAck() async throws {
        // Stream items are about 35 bytes: at most ~10 fit before an Ack is needed.
        try await withHub(configuration: Self.configuration(bufferSize: 300)) { _, port in
            let (token, _, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 2) { client in
                try await client.send(
                    .streamInvocation(
                        .init(invocationId: "1", target: "Counter", arguments: [.json(50), .json(0)])))
                #expect(await client.waitFor { $0.filter(\.isStreamItem).count >= 5 })
                try await Task.sleep(for: .milliseconds(1500))
                let before = client.messages.filter(\.isStreamItem).count
                #expect(before < 50)
                #expect(!client.messages.contains(where: { $0.isCompletion("1") }))
                // Acknowledge everything received, every 100 ms (at most 20 s), until the stream is complete.
                var done = false
                for _ in 0..<200 where !done {
                    let received = client.messages.filter(\.isTrackable).count
                    try await client.send(.ack(sequenceId: Int64(received)))
                    try await Task.sleep(for: .milliseconds(100))
                    done = client.messages.contains(where: { $0.isCompletion("1") })
                }
                #expect(done)
                let items = client.messages.compactMap(\.streamItemValue)
                #expect(items == Array(0..<50))
            }
        }
    }

    /// The policy when a disconnected connection's buffers fill (HubConfiguration.statefulReconnectBufferSize):
    /// the replay buffer, then the outbound buffer; a message past `maximumBufferedBytes` ends that connection
    /// at once, long before the disconnect timeout, with an error naming the cause; its id is gone; another member
    /// of the same group and the sender get everything.
    @Test func overflowWhileDisconnectedEndsOnlyThatConnection() async throws {
        var configuration = Self.configuration(bufferSize: 2_000, disconnectTimeout: .seconds(60))
        configuration.maximumBufferedBytes = 32 * 1024
        try await withHub(configuration: configuration) { _, port in
            let (token, connectionId, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 2) { client in
                try await client.send(invocation("1", "Join", ["room"]))
                #expect(await client.waitFor { $0.contains(where: { $0.isCompletion("1") }) })
                client.drop()
            }
            var other = try await HubTestClient.connect(port)
            try await other.send(invocation("1", "Join", ["room"]))
            #expect(outcome(try await other.next()) == "void")
            // 100 messages of about 1 kB to the group, one per invocation (the present member reads each before
            // the next, so its own outbound buffer stays nearly empty): about 100 kB for the absent one.
            var blobs = 0
            for round in 0..<100 {
                try await other.send(invocation("b\(round)", "GroupBlob", ["room", 1, 1_000, 0]))
                while let message = try await other.next() {
                    if case .invocation(let blob) = message, blob.target == "Blob" {
                        blobs += 1
                        continue
                    }
                    #expect(outcome(message) == "void")
                    break
                }
            }
            #expect(blobs == 100)
            #expect(
                await eventually(timeout: .seconds(10)) {
                    TestHub.disconnects.withLockedValue { $0[connectionId] } != nil
                })
            let reason = TestHub.disconnects.withLockedValue { $0[connectionId] } ?? ""
            #expect(reason.hasPrefix("outbound buffer full while the client was disconnected"))
            #expect(try await upgradeStatus(port, "/hub?id=\(token)") == 404)
            // The sender's connection is fine.
            try await other.send(invocation("3", "Echo", ["still here"]))
            #expect(outcome(try await other.next()) == #""still here""#)
            await other.close()
        }
    }

    @Test func expiredConnectionRunsOnDisconnectedAndItsIdIsGone() async throws {
        try await withHub(configuration: Self.configuration(disconnectTimeout: .milliseconds(300))) { _, port in
            let (token, connectionId, _) = try await Self.negotiateStateful(port)
            try await RecordingClient.with(port, id: token, version: 2) { client in
                try await client.send(invocation("1", "Echo", ["x"]))
                #expect(await client.waitFor { $0.contains(where: { $0.isCompletion("1") }) })
                client.drop()
            }
            #expect(await eventually(timeout: .seconds(5)) {
                TestHub.disconnects.withLockedValue { $0[connectionId] } != nil
            })
            #expect(try await upgradeStatus(port, "/hub?id=\(token)") == 404)
        }
    }
}

struct NegotiateFailed: Error {}

/// A raw hub client whose messages are recorded as they arrive (a child task reads the WebSocket).
final class RecordingClient: Sendable {
    let webSocket: WebSocket
    private let received = NIOLockedValueBox<[HubMessage]>([])

    init(webSocket: WebSocket) { self.webSocket = webSocket }

    var messages: [HubMessage] { received.withLockedValue { $0 } }

    /// Connects to `/hub?id=…`, sends a JSON handshake of `version` (none when nil: a stateful reconnect), runs
    /// `body`, closes.
    static func with(
        _ port: Int, id: String, version: Int?, _ body: @escaping @Sendable (RecordingClient) async throws -> Void
    ) async throws {
        let webSocket = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/hub?id=\(id)")
        let client = RecordingClient(webSocket: webSocket)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.read(expectHandshake: version != nil) }
            if let version {
                try await webSocket.send(text: #"{"protocol":"json","version":\#(version)}"# + "\u{1e}")
            }
            try await body(client)
            await webSocket.close()
            try await group.waitForAll()
        }
    }

    private func read(expectHandshake: Bool) async {
        var handshake = expectHandshake
        for await frame in webSocket.messages {
            var bytes = Array(frame.payload.readableBytesView)
            if handshake, bytes.starts(with: [0x7B, 0x7D, 0x1E]) {
                bytes.removeFirst(3)
                handshake = false
            }
            var decoded: [HubMessage] = []
            try? HubWireFormat.json.decode(frame: bytes, limits: .default, into: &decoded)
            received.withLockedValue { $0 += decoded }
        }
    }

    func send(_ message: HubMessage) async throws {
        try await webSocket.send(text: String(decoding: try HubWireFormat.json.encode(message), as: UTF8.self))
    }

    /// Drops the TCP connection without a close frame.
    func drop() {
        webSocket.channel.close(promise: nil)
    }

    /// Waits up to `timeout` for `condition` on the messages so far; `onPoll` runs every 100 ms.
    func waitFor(
        timeout: Duration = .seconds(5), _ condition: @Sendable ([HubMessage]) -> Bool,
        onPoll: @Sendable () async -> Void = {}
    ) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(messages) { return true }
            await onPoll()
            try? await Task.sleep(for: .milliseconds(100))
        }
        return condition(messages)
    }
}

extension HubMessage {
    func isCompletion(_ id: String) -> Bool {
        if case .completion(let completion) = self { return completion.invocationId == id }
        return false
    }

    var isAckOrSequence: Bool {
        switch self {
        case .ack, .sequence: true
        default: false
        }
    }

    var isStreamItem: Bool {
        if case .streamItem = self { return true }
        return false
    }

    var streamItemValue: Int? {
        guard case .streamItem(let item) = self, case .json(let value) = item.item, case .int(let number) = value
        else { return nil }
        return Int(exactly: number)
    }
}
