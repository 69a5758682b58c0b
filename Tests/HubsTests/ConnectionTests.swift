import HubProtocol
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketCore
import WebSocketNIO
import WebSocketNIOTestSupport
import WebSocketTestSupport

@testable import Hubs

/// Handshake, dispatch, streaming and the bad inputs of issue #15 that apply to the WebSocket transport.
@Suite struct ConnectionTests {
    // MARK: Handshake

    @Test(arguments: [("json", 0), ("json", 1), ("json", 2), ("messagepack", 0), ("messagepack", 1)])
    func handshakeVersionsAndProtocols(name: String, version: Int) async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, protocol: name, version: version)
            try await client.send(invocation("1", "Add", [40, 2]))
            #expect(outcome(try await client.next()) == "42")
            await client.close()
        }
    }

    @Test(arguments: [
        (#"{"protocol":"xml","version":1}"#, "The protocol 'xml' is not supported."),
        (#"{"protocol":"json","version":3}"#, "The server does not support version 3 of the 'json' protocol."),
    ])
    func handshakeRefused(request: String, error: String) async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, handshake: false)
            try await client.sendText(request + "\u{1e}")
            let frame = try #require(await client.nextFrame())
            #expect(frame.text == #"{"error":"\#(error)"}"# + "\u{1e}")
            #expect(await client.nextFrame() == nil)  // then closed
        }
    }

    @Test func messageBeforeHandshakeIsRefused() async throws {
        try await withHub { endpoint, port in
            var client = try await HubTestClient.connect(port, handshake: false)
            try await client.sendText(#"{"type":1,"invocationId":"1","target":"Add","arguments":[1,2]}"# + "\u{1e}")
            let frame = try #require(await client.nextFrame())
            #expect(frame.text.hasPrefix(#"{"error":"Handshake was canceled."#))
            #expect(await client.nextFrame() == nil)
            #expect(endpoint.connectionCount == 0)
        }
    }

    @Test func messagesInTheHandshakeFrameAreProcessed() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, handshake: false)
            let invocation = #"{"type":1,"invocationId":"7","target":"Echo","arguments":["early"]}"#
            try await client.sendText(#"{"protocol":"json","version":1}"# + "\u{1e}" + invocation + "\u{1e}")
            let first = try #require(await client.nextFrame())
            // The handshake response is its own frame, the completion follows.
            #expect(first.text == "{}\u{1e}")
            // onConnected's Welcome, then the answer to the invocation that came with the handshake.
            guard case .invocation(let welcome)? = try await client.next() else {
                Issue.record("no Welcome")
                return
            }
            #expect(welcome.target == "Welcome")
            #expect(outcome(try await client.next()) == #""early""#)
            await client.close()
        }
    }

    @Test func handshakeTimeoutClosesSilently() async throws {
        var configuration = HubConfiguration()
        configuration.handshakeTimeout = .milliseconds(300)
        try await withHub(configuration: configuration) { _, port in
            var client = try await HubTestClient.connect(port, handshake: false)
            let start = ContinuousClock.now
            #expect(await client.nextFrame() == nil)
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    // MARK: Dispatch

    @Test func invocationResultsAndErrors() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(invocation("1", "Add", [1, 2]))
            #expect(outcome(try await client.next()) == "3")
            try await client.send(invocation("2", "Void", []))
            #expect(outcome(try await client.next()) == "void")
            try await client.send(invocation("3", "Missing", []))
            #expect(outcome(try await client.next()) == "error: Unknown hub method 'Missing'")
            try await client.send(invocation("4", "Add", [1]))
            #expect(
                outcome(try await client.next())
                    == "error: Failed to invoke 'Add' due to an error on the server. InvalidDataException: "
                    + "Invocation provides 1 argument(s) but target expects 2.")
            try await client.send(invocation("5", "Add", ["a", true]))
            #expect(outcome(try await client.next()).contains("Error binding arguments."))
            try await client.send(invocation("6", "Throw", ["nope"]))
            #expect(
                outcome(try await client.next())
                    == "error: An unexpected error occurred invoking 'Throw' on the server. HubException: nope")
            try await client.send(invocation("7", "Counter", [1, 0]))
            #expect(outcome(try await client.next()).contains("with a non-streaming invocation"))
            // Non-blocking: no answer, so the next message is the answer to the next invocation.
            try await client.send(invocation(nil, "Add", [1, 1]), invocation(nil, "Missing", []))
            try await client.send(invocation("8", "Echo", ["after"]))
            #expect(outcome(try await client.next()) == #""after""#)
            await client.close()
        }
    }

    @Test(arguments: ["json", "messagepack"])
    func serverToClientStream(name: String) async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, protocol: name)
            try await client.send(
                .streamInvocation(.init(invocationId: "s", target: "Counter", arguments: [.json(3), .json(1)])))
            var items: [String] = []
            while true {
                let message = try #require(try await client.next())
                if case .streamItem(let item) = message {
                    #expect(item.invocationId == "s")
                    items.append("\(try item.item.jsonValue())")
                    continue
                }
                #expect(outcome(message) == "void")
                break
            }
            #expect(items == ["0", "1", "2"])
            try await client.send(
                .streamInvocation(.init(invocationId: "t", target: "Add", arguments: [.json(1), .json(2)])))
            #expect(outcome(try await client.next()).contains("non-streaming 'Add' method with a streaming invocation"))
            await client.close()
        }
    }

    @Test func cancelInvocationStopsAStream() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(
                .streamInvocation(.init(invocationId: "s", target: "Counter", arguments: [.json(10_000), .json(20)])))
            guard case .streamItem = try await client.next() else {
                Issue.record("no first item")
                return
            }
            try await client.send(.cancelInvocation(.init(invocationId: "s")))
            var items = 1
            while true {
                let message = try #require(try await client.next())
                if case .streamItem = message {
                    items += 1
                    continue
                }
                #expect(outcome(message) == "void")
                break
            }
            #expect(items < 100)
            // Unknown ids are ignored.
            try await client.send(.cancelInvocation(.init(invocationId: "unknown")))
            try await client.send(invocation("e", "Echo", ["ok"]))
            #expect(outcome(try await client.next()) == #""ok""#)
            await client.close()
        }
    }

    @Test(arguments: ["json", "messagepack"])
    func clientToServerStream(name: String) async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, protocol: name)
            try await client.send(invocation("1", "Sum", [], streamIds: ["up"]))
            for number in 1...20 {
                try await client.send(.streamItem(.init(invocationId: "up", item: .json(.int(Int64(number))))))
            }
            try await client.send(.completion(.init(invocationId: "up", result: .void)))
            #expect(outcome(try await client.next()) == "210")
            // An upload ended with an error fails the method.
            try await client.send(invocation("2", "Sum", [], streamIds: ["up2"]))
            try await client.send(.completion(.init(invocationId: "up2", result: .error("client gave up"))))
            #expect(outcome(try await client.next()).hasSuffix("HubException: client gave up"))
            // Wrong number of streams.
            try await client.send(invocation("3", "Sum", [], streamIds: []))
            #expect(outcome(try await client.next()).contains("Client sent 0 stream(s), Hub method expects 1."))
            await client.close()
        }
    }

    @Test func streamItemForAnUnknownStreamIsIgnored() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(.streamItem(.init(invocationId: "nobody", item: .json(1))))
            try await client.send(.completion(.init(invocationId: "nobody", result: .void)))
            try await client.send(invocation("1", "Echo", ["alive"]))
            #expect(outcome(try await client.next()) == #""alive""#)
            await client.close()
        }
    }

    // MARK: Bad input closes with an error Close message

    @Test(arguments: [
        ("malformed JSON", #"{"type":1,"invocationId":"#, "malformedJSON"),
        ("missing 0x1E", #"{"type":6}"#, "missingRecordSeparator"),
        ("unknown type", #"{"type":99}"#, "unknownMessageType"),
        ("missing target", #"{"type":1,"invocationId":"1","arguments":[]}"#, "missingField"),
    ])
    func badJSONClosesWithAnError(label: String, text: String, code: String) async throws {
        try await withHub { endpoint, port in
            var other = try await HubTestClient.connect(port)
            var client = try await HubTestClient.connect(port)
            let frame = label == "missing 0x1E" ? text : text + "\u{1e}"
            try await client.sendText(frame)
            let message = try #require(try await client.next())
            guard case .close(let close) = message else {
                Issue.record("\(label): expected Close, got \(message)")
                return
            }
            #expect(close.error?.hasPrefix("Connection closed with an error. InvalidDataException: \(code)") == true)
            #expect(try await client.next() == nil)
            // Nothing else is disturbed.
            try await other.send(invocation("1", "Echo", ["fine"]))
            #expect(outcome(try await other.next()) == #""fine""#)
            #expect(await eventually { endpoint.connectionCount == 1 })
            await other.close()
        }
    }

    @Test func oversizedMessageClosesWithAnError() async throws {
        var configuration = HubConfiguration()
        configuration.limits.maximumMessageSize = 1024
        try await withHub(configuration: configuration) { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(invocation("1", "Echo", [.string(String(repeating: "x", count: 2000))]))
            guard case .close(let close)? = try await client.next() else {
                Issue.record("no Close")
                return
            }
            #expect(close.error?.contains("messageTooLarge") == true)
        }
    }

    @Test func defaultLimitIs32KiB() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port)
            let fits = String(repeating: "a", count: 32 * 1024 - 100)
            try await client.send(invocation("1", "Echo", [.string(fits)]))
            #expect(outcome(try await client.next()).count == fits.count + 2)
            try await client.send(invocation("2", "Echo", [.string(String(repeating: "b", count: 32 * 1024))]))
            guard case .close(let close)? = try await client.next() else {
                Issue.record("no Close")
                return
            }
            #expect(close.error?.contains("messageTooLarge") == true)
        }
    }

    @Test func disconnectCancelsStreams() async throws {
        TestHub.cancelledStreams.withLockedValue { $0 = [] }
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(
                .streamInvocation(.init(invocationId: "e", target: "Endless", arguments: [.json("disconnect")])))
            guard case .streamItem? = try await client.next() else {
                Issue.record("no item")
                return
            }
            await client.close()
            #expect(await eventually { TestHub.cancelledStreams.withLockedValue { $0.contains("disconnect") } })
        }
    }

    @Test func connectionItemsAndLifecycleHooks() async throws {
        let authenticator = HubAuthenticator { request in
            request.bearerToken.map { .authenticated(HubUser(id: $0)) } ?? .anonymous
        }
        try await withHub(authenticator: authenticator) { endpoint, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(invocation("1", "Recall", []))
            #expect(outcome(try await client.next()) == #""nothing""#)
            try await client.send(invocation(nil, "Remember", ["blue"]), invocation("2", "Recall", []))
            #expect(outcome(try await client.next()) == #""blue""#)
            var other = try await HubTestClient.connect(port)
            try await other.send(invocation("3", "Recall", []))
            #expect(outcome(try await other.next()) == #""nothing""#)
            await other.close()
            await client.close()
            // onConnected throwing closes the connection with its error.
            var refused = try await HubTestClient.connect(port, query: "?access_token=refused", handshake: false)
            try await refused.sendText(#"{"protocol":"json","version":1}"# + "\u{1e}")
            #expect(await refused.nextFrame()?.text == "{}\u{1e}")
            guard case .close(let close)? = try await refused.next() else {
                Issue.record("no Close")
                return
            }
            #expect(close.error == "Connection closed with an error. HubException: not welcome")
            #expect(await eventually { endpoint.connectionCount == 0 })
        }
    }

    @Test func invalidMessagePackVarIntClosesWithAnError() async throws {
        try await withHub { _, port in
            var client = try await HubTestClient.connect(port, protocol: "messagepack")
            try await client.sendBinary([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x91, 0x06])
            guard case .close(let close)? = try await client.next() else {
                Issue.record("no Close")
                return
            }
            #expect(close.error?.contains("invalidVarInt") == true)
        }
    }

    @Test func clientCloseMessageEndsTheConnection() async throws {
        try await withHub { endpoint, port in
            var client = try await HubTestClient.connect(port)
            #expect(await eventually { endpoint.connectionCount == 1 })
            try await client.send(.close(.init()))
            #expect(try await client.next() == nil)
            #expect(await eventually { endpoint.connectionCount == 0 })
        }
    }

    @Test func closeAllSendsCloseWithAllowReconnect() async throws {
        try await withHub { endpoint, port in
            var json = try await HubTestClient.connect(port)
            var messagePack = try await HubTestClient.connect(port, protocol: "messagepack")
            #expect(await eventually { endpoint.connectionCount == 2 })
            await endpoint.closeAll()
            #expect(endpoint.connectionCount == 0)
            for index in 0..<2 {
                let message = index == 0 ? try await json.next() : try await messagePack.next()
                #expect(message == .close(.init(error: nil, allowReconnect: true)))
            }
            #expect(try await json.next() == nil)
            #expect(try await messagePack.next() == nil)
        }
    }

    // MARK: Keep-alive and timeouts

    @Test func keepAlivePingAndClientTimeout() async throws {
        var configuration = HubConfiguration()
        configuration.keepAliveInterval = .milliseconds(100)
        configuration.clientTimeoutInterval = .milliseconds(600)
        try await withHub(configuration: configuration) { _, port in
            var client = try await HubTestClient.connect(port)
            var pings = 0
            while true {
                guard let message = try await client.next(skippingPings: false) else {
                    Issue.record("closed without a Close message")
                    return
                }
                if case .ping = message {
                    pings += 1
                    continue
                }
                guard case .close(let close) = message else {
                    Issue.record("unexpected \(message)")
                    return
                }
                #expect(close.error == "Server timeout elapsed without receiving a message from the client.")
                break
            }
            #expect(pings >= 2)
        }
    }

    @Test func aLongInvocationDoesNotCountAsClientSilence() async throws {
        var configuration = HubConfiguration()
        configuration.clientTimeoutInterval = .milliseconds(300)
        try await withHub(configuration: configuration) { _, port in
            var client = try await HubTestClient.connect(port)
            try await client.send(invocation("1", "Sleep", [900]))
            #expect(outcome(try await client.next()) == "900")
            // Then the client is silent: the timeout applies again.
            guard case .close(let close)? = try await client.next() else {
                Issue.record("no Close")
                return
            }
            #expect(close.error?.hasPrefix("Server timeout elapsed") == true)
        }
    }

    @Test func pingsKeepTheClientAlive() async throws {
        var configuration = HubConfiguration()
        configuration.clientTimeoutInterval = .milliseconds(400)
        try await withHub(configuration: configuration) { _, port in
            var client = try await HubTestClient.connect(port)
            for _ in 0..<8 {
                try await client.send(.ping)
                try await Task.sleep(for: .milliseconds(100))
            }
            try await client.send(invocation("1", "Echo", ["alive"]))
            #expect(outcome(try await client.next()) == #""alive""#)
            await client.close()
        }
    }
}
