import RedisTestSupport
import NIOCore
import RESP
import RedisClient
import Testing

/// Against a real redis-server (Debian package), one fresh server per test, on 127.0.0.1 and a free port.
@Suite(
    "RedisClient against redis-server",
    .enabled(if: RedisServerProcess.binary != nil, Comment(rawValue: RedisServerProcess.missingMessage)),
    .serialized
)
struct RealRedisTests {
    func configuration(_ server: RedisServerProcess, _ change: (inout RedisConfiguration) -> Void = { _ in })
        -> RedisConfiguration
    {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: server.port)
        change(&configuration)
        return configuration
    }

    @Test("HELLO 3 gives RESP3; RESP2 on request; PING; CLIENT SETNAME through HELLO")
    func hello() async throws {
        try await withRedisServer { server in
            let three = try await RedisConnection.connect(configuration(server) { $0.clientName = "ours" })
            #expect(three.protocolVersion == 3)
            try await three.ping()
            #expect(try await three.send(RESPCommand("CLIENT", "GETNAME")).string == "ours")
            // RESP3 types from a real server: a map (HGETALL), a double (ZSCORE), a set (SMEMBERS), null.
            _ = try await three.send([RESPCommand("HSET", "h", "f", "v"), RESPCommand("ZADD", "z", "1.5", "m")])
            guard case .map(let pairs) = try await three.send(RESPCommand("HGETALL", "h")) else {
                Issue.record("HGETALL is not a map in RESP3")
                return
            }
            #expect(pairs == [.init(.bulkString(Array("f".utf8)), .bulkString(Array("v".utf8)))])
            #expect(try await three.send(RESPCommand("ZSCORE", "z", "m")) == .double(1.5))
            #expect(try await three.send(RESPCommand("GET", "missing")) == .null)
            await three.close()

            let two = try await RedisConnection.connect(
                configuration(server) {
                    $0.protocolPreference = .resp2
                    $0.clientName = "two"
                })
            #expect(two.protocolVersion == 2)
            try await two.ping()
            #expect(try await two.send(RESPCommand("GET", "missing")) == .bulkString(nil))
            #expect(try await two.send(RESPCommand("ZSCORE", "z", "m")) == .bulkString(Array("1.5".utf8)))
            #expect(try await two.send(RESPCommand("CLIENT", "GETNAME")).string == "two")
            await two.close()
        }
    }

    @Test("requirepass: HELLO AUTH and AUTH succeed with the password; wrong or none is refused")
    func requirepass() async throws {
        try await withRedisServer(["--requirepass", "s3cret"]) { server in
            for preference in [RedisConfiguration.ProtocolPreference.resp3, .resp2] {
                let redis = try await RedisConnection.connect(
                    configuration(server) {
                        $0.password = "s3cret"
                        $0.protocolPreference = preference
                    })
                try await redis.ping()
                await redis.close()
                await #expect(throws: RedisError.self) {
                    _ = try await RedisConnection.connect(
                        self.configuration(server) {
                            $0.password = "wrong"
                            $0.protocolPreference = preference
                        })
                }
            }
            do {
                _ = try await RedisConnection.connect(configuration(server) { $0.password = "wrong" })
                Issue.record("a wrong password was accepted")
            } catch let error as RedisError {
                guard case .authenticationFailed(let message) = error else {
                    Issue.record("not an authentication failure: \(error)")
                    return
                }
                #expect(message.hasPrefix("WRONGPASS"))
            }
            // Without a password HELLO 3 is refused with NOAUTH.
            await #expect(throws: RedisError.self) { _ = try await RedisConnection.connect(self.configuration(server)) }
            let bare = try await RedisConnection.connect(configuration(server) { $0.protocolPreference = .resp2 })
            #expect(try await bare.send(.ping()).errorMessage?.hasPrefix("NOAUTH") == true)
            await #expect(throws: RedisError.self) { try await bare.ping() }
            await bare.close()
        }
    }

    @Test("an ACL user authenticates by HELLO 3 AUTH and by AUTH user password")
    func aclUser() async throws {
        try await withRedisServer { server in
            let admin = try await RedisConnection.connect(configuration(server))
            try await admin.run(RESPCommand("ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all"))
            await admin.close()
            for preference in [RedisConfiguration.ProtocolPreference.resp3, .resp2] {
                let alice = try await RedisConnection.connect(
                    configuration(server) {
                        $0.username = "alice"
                        $0.password = "wonderland"
                        $0.protocolPreference = preference
                    })
                #expect(try await alice.send(RESPCommand("ACL", "WHOAMI")).string == "alice")
                await alice.close()
                do {
                    _ = try await RedisConnection.connect(
                        configuration(server) {
                            $0.username = "alice"
                            $0.password = "rabbit"
                            $0.protocolPreference = preference
                        })
                    Issue.record("a wrong ACL password was accepted")
                } catch RedisError.authenticationFailed(let message) {
                    #expect(message.hasPrefix("WRONGPASS"))
                }
            }
        }
    }

    @Test("pipelining: 1000 commands in one write, replies in order; 200 concurrent callers each get theirs")
    func pipelining() async throws {
        try await withRedisServer { server in
            let redis = try await RedisConnection.connect(configuration(server))
            let commands = (0..<1000).map { _ in RESPCommand("INCR", "counter") }
            let replies = try await redis.send(commands)
            #expect(replies == (1...1000).map { RESPValue.integer(Int64($0)) })
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let reply = try await redis.send(RESPCommand("ECHO", "caller \(index)"))
                        #expect(reply.string == "caller \(index)")
                    }
                }
                try await group.waitForAll()
            }
            await redis.close()
        }
    }

    func roundTrip(_ preference: RedisConfiguration.ProtocolPreference) async throws {
        try await withRedisServer { server in
            let subscriber = try await RedisConnection.connect(
                configuration(server) { $0.protocolPreference = preference })
            let publisher = try await RedisConnection.connect(
                configuration(server) { $0.protocolPreference = preference })
            try await subscriber.subscribe(to: ["news", "sport"])
            try await subscriber.subscribe(toPatterns: ["n*"])
            try await subscriber.ping()  // allowed while subscribed, in RESP2 too
            if preference == .resp2 {
                // Redis refuses other commands on a RESP2 subscriber: an error reply, not a hang.
                do {
                    _ = try await subscriber.publish([1], to: "elsewhere")
                    Issue.record("PUBLISH on a RESP2 subscriber succeeded")
                } catch RedisError.server(let message) {
                    #expect(message.hasPrefix("ERR"))
                }
            }
            let binary: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF]
            #expect(try await publisher.publish(binary, to: "news") == 2)  // the channel and the pattern
            #expect(try await publisher.publish(Array("goal".utf8), to: "sport") == 1)
            try await subscriber.unsubscribe(from: ["news"])
            #expect(try await publisher.publish(Array("late".utf8), to: "news") == 1)
            try await subscriber.unsubscribe(fromPatterns: ["n*"])
            #expect(try await publisher.publish(Array("lost".utf8), to: "news") == 0)
            #expect(try await publisher.publish(Array("end".utf8), to: "sport") == 1)
            let received = try await collect(subscriber.messages, count: 5)
            #expect(
                received == [
                    PubSubMessage(channel: "news", payload: binary),
                    PubSubMessage(channel: "news", pattern: "n*", payload: binary),
                    PubSubMessage(channel: "sport", payload: Array("goal".utf8)),
                    PubSubMessage(channel: "news", pattern: "n*", payload: Array("late".utf8)),
                    PubSubMessage(channel: "sport", payload: Array("end".utf8)),
                ]
            )
            await subscriber.close()
            // After close() the sequence ends without an error.
            #expect(try await collect(subscriber.messages, count: .max).isEmpty)
            await publisher.close()
        }
    }

    @Test("PUBLISH / SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE round trip in RESP3 (pushes)")
    func pubSubRESP3() async throws { try await roundTrip(.resp3) }

    @Test("PUBLISH / SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE round trip in RESP2 (pub/sub mode)")
    func pubSubRESP2() async throws { try await roundTrip(.resp2) }

    @Test("RESP3: one connection publishes and subscribes, commands keep working while subscribed")
    func resp3Mixed() async throws {
        try await withRedisServer { server in
            let redis = try await RedisConnection.connect(configuration(server))
            try await redis.subscribe(to: ["self"])
            #expect(try await redis.publish(Array("me".utf8), to: "self") == 1)
            #expect(try await redis.send(RESPCommand("ECHO", "x")).string == "x")
            // The generic send knows that SUBSCRIBE answers with one confirmation per channel.
            #expect(try await redis.send(RESPCommand("SUBSCRIBE", "x", "y")).elements?.last?.integer == 3)
            await #expect(throws: RedisError.unsupportedCommand("UNSUBSCRIBE")) {
                _ = try await redis.send(RESPCommand("UNSUBSCRIBE"))
            }
            try await redis.ping()
            #expect(
                try await collect(redis.messages, count: 1) == [
                    PubSubMessage(channel: "self", payload: Array("me".utf8))
                ])
            await redis.close()
        }
    }

    @Test(
        "RESET and HELLO through send() do not leave the client reading the wrong protocol",
        arguments: [
            RESPCommand("RESET"), RESPCommand.hello(protocolVersion: 2),
        ])
    func protocolSwitchBySend(command: RESPCommand) async throws {
        try await withRedisServer { server in
            let redis = try await RedisConnection.connect(configuration(server))
            let publisher = try await RedisConnection.connect(configuration(server))
            // Either refused (nothing sent) or followed; afterwards pub/sub must still work.
            do {
                _ = try await redis.send(command)
            } catch RedisError.unsupportedCommand {
            }
            try await withTimeout(.seconds(10)) { try await redis.subscribe(to: ["a", "b"]) }
            #expect(try await publisher.publish(Array("hi".utf8), to: "b") == 1)
            #expect(
                try await collect(redis.messages, count: 1) == [PubSubMessage(channel: "b", payload: Array("hi".utf8))])
            try await redis.ping()
            await redis.close()
            await publisher.close()
        }
    }

    @Test("redis-server killed mid-subscription: the sequence ends with connectionClosed, commands fail, no crash")
    func killed() async throws {
        let server = try await RedisServerProcess.start()
        defer { server.stop() }
        let subscriber = try await RedisConnection.connect(configuration(server))
        try await subscriber.subscribe(to: ["c"])
        let publisher = try await RedisConnection.connect(configuration(server))
        #expect(try await publisher.publish(Array("before".utf8), to: "c") == 1)
        // PUBLISH may answer before the message is written to the subscriber: wait for it, then crash.
        #expect(
            try await collect(subscriber.messages, count: 1) == [
                PubSubMessage(channel: "c", payload: Array("before".utf8))
            ])
        server.crash()
        let outcome = try await withTimeout(.seconds(10)) {
            var messages: [PubSubMessage] = []
            do {
                for try await message in subscriber.messages { messages.append(message) }
                return (messages, nil as RedisError?)
            } catch let error as RedisError {
                return (messages, error)
            }
        }
        #expect(outcome.0.isEmpty)
        #expect(outcome.1 == .connectionClosed(midReply: false))
        await #expect(throws: RedisError.self) { try await subscriber.ping() }
        await #expect(throws: (any Error).self) { _ = try await publisher.publish([1], to: "c") }
        #expect(!subscriber.isActive)
        await #expect(throws: (any Error).self) {
            _ = try await RedisConnection.connect(self.configuration(server) { $0.connectTimeout = .seconds(1) })
        }
        // Reconnecting is connecting again and subscribing again: a new server on the same port.
        let restarted = try await RedisServerProcess.start(port: server.port)
        defer { restarted.stop() }
        let again = try await RedisConnection.connect(configuration(restarted))
        try await again.subscribe(to: ["c"])
        let publisherAgain = try await RedisConnection.connect(configuration(restarted))
        #expect(try await publisherAgain.publish(Array("after".utf8), to: "c") == 1)
        #expect(
            try await collect(again.messages, count: 1) == [PubSubMessage(channel: "c", payload: Array("after".utf8))])
        await again.close()
        await publisherAgain.close()
    }

    @Test("a subscriber disconnected by the server (CLIENT KILL TYPE pubsub): the sequence ends with an error")
    func killedByServer() async throws {
        try await withRedisServer { server in
            let subscriber = try await RedisConnection.connect(configuration(server))
            try await subscriber.subscribe(to: ["c"])
            let admin = try await RedisConnection.connect(configuration(server))
            #expect(try await admin.run(RESPCommand("CLIENT", "KILL", "TYPE", "pubsub")) == .integer(1))
            let ending = try await withTimeout(.seconds(10)) {
                do {
                    for try await _ in subscriber.messages {}
                    return nil as RedisError?
                } catch let error as RedisError {
                    return error
                }
            }
            #expect(ending == .connectionClosed(midReply: false))
            await admin.close()
        }
    }

    /// What the backplane will do, through the protocol only.
    func echoThroughBackplaneProtocol<Connection: PubSubConnection>(
        publisher: Connection,
        subscriber: Connection
    ) async throws -> [PubSubMessage] {
        try await subscriber.subscribe(to: ["group:a"])
        try await subscriber.subscribe(toPatterns: ["user:*"])
        _ = try await publisher.publish([1], to: "group:a")
        _ = try await publisher.publish([2], to: "user:42")
        try await subscriber.unsubscribe(from: ["group:a"])
        try await subscriber.unsubscribe(fromPatterns: ["user:*"])
        _ = try await publisher.publish([3], to: "group:a")
        _ = try await publisher.publish([4], to: "group:b")
        try await subscriber.subscribe(to: ["group:b"])
        _ = try await publisher.publish([5], to: "group:b")
        let received = try await collect(subscriber.messages, count: 3)
        await subscriber.close()
        await publisher.close()
        return received
    }

    @Test("RedisConnection through PubSubConnection, the backplane's protocol")
    func throughProtocol() async throws {
        try await withRedisServer { server in
            let received = try await echoThroughBackplaneProtocol(
                publisher: try await RedisConnection.connect(configuration(server)),
                subscriber: try await RedisConnection.connect(configuration(server))
            )
            #expect(
                received == [
                    PubSubMessage(channel: "group:a", payload: [1]),
                    PubSubMessage(channel: "user:42", pattern: "user:*", payload: [2]),
                    PubSubMessage(channel: "group:b", payload: [5]),
                ]
            )
        }
    }

    @Test("slow consumer: closeConnection ends the sequence after the buffered messages; dropNewest counts drops")
    func slowConsumer() async throws {
        try await withRedisServer { server in
            let publisher = try await RedisConnection.connect(configuration(server))
            let closing = try await RedisConnection.connect(configuration(server) { $0.messageBufferSize = 4 })
            let dropping = try await RedisConnection.connect(
                configuration(server) {
                    $0.messageBufferSize = 4
                    $0.slowConsumerPolicy = .dropNewest
                })
            try await closing.subscribe(to: ["flood"])
            try await dropping.subscribe(to: ["flood"])
            for index in 0..<10 { _ = try await publisher.publish(Array("\(index)".utf8), to: "flood") }
            // The dropping connection answers PING after the 10 pushes before it: all 10 were handled by then.
            try await dropping.ping()
            #expect(dropping.droppedMessages == 6)
            let kept = try await collect(dropping.messages, count: 4).map {
                String(decoding: $0.payload, as: UTF8.self)
            }
            #expect(kept == ["0", "1", "2", "3"])
            // `closing` reads its socket on its own: wait until the fifth message has made it close, so that
            // reading below cannot make room in time.
            let deadline = ContinuousClock.now + .seconds(10)
            while closing.isActive, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(!closing.isActive)
            let outcome = try await withTimeout(.seconds(10)) {
                var received = 0
                do {
                    for try await _ in closing.messages { received += 1 }
                    return (received, nil as RedisError?)
                } catch let error as RedisError {
                    return (received, error)
                }
            }
            #expect(outcome.0 == 4)
            #expect(outcome.1 == .slowConsumer(bufferSize: 4))
            await dropping.close()
            await publisher.close()
        }
    }

    @Test("XADD with MAXLEN (exact and ~) and XRANGE, in RESP3 and RESP2")
    func streams() async throws {
        try await withRedisServer { server in
            for preference in [RedisConfiguration.ProtocolPreference.resp3, .resp2] {
                let redis = try await RedisConnection.connect(
                    configuration(server) { $0.protocolPreference = preference })
                let key = "history-\(preference)"
                var ids: [String] = []
                for index in 0..<20 {
                    ids.append(
                        try await redis.xadd(
                            key: key, maxLength: 5, approximate: false,
                            fields: [("id", Array("\(index)".utf8)), ("data", [0xFF, UInt8(index)])]
                        )
                    )
                }
                let entries = try await redis.xrange(key: key)
                #expect(entries.map(\.id) == Array(ids.suffix(5)))
                #expect(
                    entries.first?.fields == [
                        .init(name: "id", value: Array("15".utf8)), .init(name: "data", value: [0xFF, 15]),
                    ])
                let after = try await redis.xrange(key: key, start: "(" + ids[17], count: 1)
                #expect(after.map(\.id) == [ids[18]])
                let approximate = try await redis.xadd(key: key, maxLength: 3, fields: [("id", [])])
                #expect(try await redis.xrange(key: key, start: approximate).count == 1)
                await #expect(throws: RedisError.self) { _ = try await redis.xrange(key: key, start: "bad") }
                await redis.close()
            }
        }
    }
}
