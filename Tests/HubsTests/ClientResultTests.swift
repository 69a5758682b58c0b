import HubProtocol
import Testing
import WebSocketNIOTestSupport

@testable import Hubs

/// Client results: the server invokes a method on one client and awaits its Completion.
@Suite struct ClientResultTests {
    /// Connects a client and returns it with its public connection id (the only one connected at that moment).
    static func connect(_ endpoint: HubEndpoint<TestHub>, _ port: Int, protocol name: String = "json") async throws
        -> (HubTestClient, String)
    {
        let before = Set(endpoint.manager.connectionIds)
        let client = try await HubTestClient.connect(port, protocol: name)
        #expect(await eventually { endpoint.manager.connectionIds.count == before.count + 1 })
        let id = try #require(endpoint.manager.connectionIds.first { !before.contains($0) })
        return (client, id)
    }

    @Test(arguments: ["json", "messagepack"])
    func resultErrorAndTimeout(name: String) async throws {
        try await withHub { endpoint, port in
            var (answerer, answererId) = try await Self.connect(endpoint, port, protocol: name)
            var (asker, _) = try await Self.connect(endpoint, port)

            try await asker.send(invocation("1", "Ask", [.string(answererId), 2000]))
            guard case .invocation(let question)? = try await answerer.next(), let id = question.invocationId else {
                Issue.record("no Invocation with an id")
                return
            }
            #expect(question.target == "Question")
            try await answerer.send(.completion(.init(invocationId: id, result: .value(.json(42)))))
            #expect(outcome(try await asker.next()) == "42")

            try await asker.send(invocation("2", "Ask", [.string(answererId), 2000]))
            guard case .invocation(let second)? = try await answerer.next(), let secondId = second.invocationId else {
                Issue.record("no second Invocation")
                return
            }
            #expect(secondId != id)
            try await answerer.send(.completion(.init(invocationId: secondId, result: .error("no"))))
            #expect(outcome(try await asker.next()).hasSuffix("HubException: no"))

            // No answer: the hub method's wait times out; a late answer is ignored.
            try await asker.send(invocation("3", "Ask", [.string(answererId), 200]))
            guard case .invocation(let third)? = try await answerer.next(), let thirdId = third.invocationId else {
                Issue.record("no third Invocation")
                return
            }
            #expect(outcome(try await asker.next()).contains("did not answer 'Question'"))
            try await answerer.send(.completion(.init(invocationId: thirdId, result: .value(.json(1)))))
            try await answerer.send(invocation("4", "Echo", ["fine"]))
            #expect(outcome(try await answerer.next()) == #""fine""#)
            await answerer.close()
            await asker.close()
        }
    }

    @Test func callerResultsAreRefusedAndDisconnectFailsTheWait() async throws {
        try await withHub { endpoint, port in
            var (answerer, answererId) = try await Self.connect(endpoint, port)
            var (asker, _) = try await Self.connect(endpoint, port)
            try await answerer.send(invocation("1", "AskCaller", []))
            #expect(outcome(try await answerer.next()).contains("cannot wait for a result from its own caller"))

            try await asker.send(invocation("2", "Ask", [.string(answererId), 10_000]))
            guard case .invocation? = try await answerer.next() else {
                Issue.record("no Invocation")
                return
            }
            await answerer.close()
            #expect(outcome(try await asker.next()).contains("The connection ended before the client answered."))
            await asker.close()
        }
    }
}
