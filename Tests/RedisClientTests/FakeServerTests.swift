import RedisTestSupport
import RESP
import RedisClient
import Testing

/// Against a scripted fake server: what a real Redis does not send.
@Suite("RedisClient against a fake RESP server")
struct FakeServerTests {
    func connect(_ server: FakeRedisServer, _ change: (inout RedisConfiguration) -> Void = { _ in }) async throws
        -> RedisConnection
    {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: server.port)
        change(&configuration)
        return try await RedisConnection.connect(configuration)
    }

    static let helloReply = Array("%1\r\n+server\r\n+fake\r\n".utf8)

    @Test("malformed RESP: the command fails with the parser's error, the connection closes")
    func malformed() async throws {
        let server = try await FakeRedisServer { words in
            words[0] == "HELLO" ? .reply(Self.helloReply) : .reply(Array("?what\r\n".utf8))
        }
        let redis = try await connect(server)
        #expect(redis.protocolVersion == 3)
        await #expect(throws: RedisError.protocolViolation(.invalidTypeByte(UInt8(ascii: "?")))) {
            _ = try await redis.send(.ping())
        }
        await #expect(throws: RedisError.protocolViolation(.invalidTypeByte(UInt8(ascii: "?")))) {
            _ = try await redis.send(.ping())
        }
        var ended = false
        do {
            _ = try await collect(redis.messages, count: .max)
        } catch {
            ended = error as? RedisError == .protocolViolation(.invalidTypeByte(UInt8(ascii: "?")))
        }
        #expect(ended)
        await server.stop()
    }

    @Test("an oversized bulk string fails at its length line, before its bytes")
    func oversizedBulk() async throws {
        let server = try await FakeRedisServer { words in
            words[0] == "HELLO" ? .reply(Self.helloReply) : .reply(Array("$999999999999\r\n".utf8))
        }
        let redis = try await connect(server)
        await #expect(throws: RedisError.protocolViolation(.bulkTooLong(length: 999_999_999_999, limit: 16 << 20))) {
            _ = try await redis.send(RESPCommand("GET", "k"))
        }
        let small = try await connect(server) { $0.parser.maxBulkLength = 10 }
        await #expect(throws: RedisError.protocolViolation(.bulkTooLong(length: 999_999_999_999, limit: 10))) {
            _ = try await small.send(RESPCommand("GET", "k"))
        }
        await server.stop()
    }

    @Test("the server closes mid-reply: the pending commands fail with connectionClosed(midReply: true)")
    func closedMidReply() async throws {
        let server = try await FakeRedisServer { words in
            switch words[0] {
            case "HELLO": .reply(Self.helloReply)
            case "ECHO": .reply(Array("$2\r\nok\r\n".utf8))
            default: .replyAndClose(Array("$10\r\nabc".utf8))
            }
        }
        let redis = try await connect(server)
        #expect(try await redis.send(RESPCommand("ECHO", "ok")).string == "ok")
        await #expect(throws: RedisError.connectionClosed(midReply: true)) {
            _ = try await redis.send([RESPCommand("GET", "k"), RESPCommand("GET", "j")])
        }
        await #expect(throws: RedisError.self) { _ = try await redis.send(.ping()) }
        await server.stop()
    }

    @Test("HELLO refused as an unknown command (Redis 5): RESP2 with AUTH user password, CLIENT SETNAME")
    func helloFallback() async throws {
        let server = try await FakeRedisServer { words in
            switch words[0] {
            case "HELLO": .reply(Array("-ERR unknown command 'HELLO', with args beginning with: '3'\r\n".utf8))
            case "AUTH", "CLIENT": .reply(Array("+OK\r\n".utf8))
            default: .reply(Array("+PONG\r\n".utf8))
            }
        }
        let redis = try await connect(server) {
            $0.username = "u"
            $0.password = "p"
            $0.clientName = "n"
        }
        #expect(redis.protocolVersion == 2)
        try await redis.ping()
        #expect(
            server.commands == [
                ["HELLO", "3", "AUTH", "u", "p", "SETNAME", "n"], ["AUTH", "u", "p"], ["CLIENT", "SETNAME", "n"],
                ["PING"],
            ]
        )
        await server.stop()
    }

    @Test("NOPROTO also falls back; a refused AUTH after the fallback is an authentication failure")
    func noproto() async throws {
        let server = try await FakeRedisServer { words in
            switch words[0] {
            case "HELLO": .reply(Array("-NOPROTO unsupported protocol version\r\n".utf8))
            default: .reply(Array("-WRONGPASS invalid username-password pair\r\n".utf8))
            }
        }
        let plain = try await connect(server)
        #expect(plain.protocolVersion == 2)
        await #expect(throws: RedisError.authenticationFailed("WRONGPASS invalid username-password pair")) {
            _ = try await connect(server) { $0.password = "p" }
        }
        await server.stop()
    }

    @Test("a reply nobody asked for closes the connection")
    func unsolicited() async throws {
        let server = try await FakeRedisServer { words in
            words[0] == "HELLO" ? .reply(Self.helloReply) : .reply(Array("+PONG\r\n+EXTRA\r\n".utf8))
        }
        let redis = try await connect(server)
        _ = try? await redis.send(.ping())
        var failure: (any Error)?
        do {
            _ = try await collect(redis.messages, count: .max)
        } catch {
            failure = error
        }
        guard case .unexpectedReply = failure as? RedisError else {
            Issue.record("expected unexpectedReply, got \(String(describing: failure))")
            return
        }
        await server.stop()
    }

    /// Runs `body` while a fallback closes `redis` after `deadline`, so that a call that ignores cancellation or
    /// waits forever fails (with ``RedisError/closedLocally``) instead of hanging the test.
    func closing<T: Sendable>(
        _ redis: RedisConnection,
        after deadline: Duration = .seconds(10),
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                do {
                    try await Task.sleep(for: deadline)
                } catch {
                    return nil  // `body` returned in time
                }
                await redis.close()
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw TestFailure("no result")
        }
    }

    @Test("a cancelled caller stops waiting at once; the late reply goes to its slot, the next caller gets its own")
    func cancelledCaller() async throws {
        let server = try await FakeRedisServer { words in
            switch words[0] {
            case "HELLO": .reply(Self.helloReply)
            case "GET": .silence
            // The GET's late reply, then the PING's.
            default: .reply(Array("$4\r\nlate\r\n+PONG\r\n".utf8))
            }
        }
        let redis = try await connect(server)
        let outcome = try await closing(redis) {
            try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    do {
                        _ = try await redis.send(RESPCommand("GET", "k"))
                        return "answered"
                    } catch {
                        return "\(type(of: error)): \(error)"
                    }
                }
                try await Task.sleep(for: .milliseconds(200))
                let start = ContinuousClock.now
                group.cancelAll()
                let outcome = try await group.next() ?? "none"
                return ContinuousClock.now - start < .seconds(5) ? outcome : "late: \(outcome)"
            }
        }
        #expect(outcome == "CancellationError: CancellationError()")
        #expect(try await redis.send(.ping()) == .simpleString("PONG"))
        await redis.close()
        await server.stop()
    }

    @Test("RESP2: a reply array that looks like pub/sub (MGET of 'message') before a SUBSCRIBE stays a reply")
    func resp2ReplyBeforeSubscribe() async throws {
        let server = try await FakeRedisServer { words in
            switch words[0] {
            case "MGET": .reply(Array("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n".utf8))
            case "SUBSCRIBE": .reply(Array("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".utf8))
            default: .reply(Array("+OK\r\n".utf8))
            }
        }
        let redis = try await connect(server) { $0.protocolPreference = .resp2 }
        let replies = try await closing(redis) {
            try await redis.send([RESPCommand("MGET", "k1", "k2", "k3"), RESPCommand("SUBSCRIBE", "ch")])
        }
        #expect(replies.first == .array(["message", "a", "b"].map { .bulkString(Array($0.utf8)) }))
        #expect(replies.last?.elements?.last == .integer(1))
        await redis.close()
        #expect(try await collect(redis.messages, count: .max).isEmpty)
        await server.stop()
    }
}
