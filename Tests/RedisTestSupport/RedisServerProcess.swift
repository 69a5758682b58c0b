import Foundation
import NIOCore
import NIOPosix

/// Test support shared by the Redis test targets (RedisClientTests, RedisBackplaneTests).
///
/// A real `redis-server` (the Debian package) for one test: listens on 127.0.0.1 on a free port, keeps nothing
/// on disk (`--save '' --appendonly no`, a temporary directory), and is stopped by its PID.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    public let pid: Int32
    private let process: Process
    private let directory: URL

    /// The `redis-server` binary, or `nil` when it is not installed.
    public static let binary: String? = {
        let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"]
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map {
            "\($0)/redis-server"
        }
        return (candidates + path).first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    public static let missingMessage = "redis-server is not installed (Debian: apt-get install redis-server; scripts/setup.sh)"

    private init(process: Process, port: Int, directory: URL) {
        self.process = process
        self.port = port
        self.pid = process.processIdentifier
        self.directory = directory
    }

    /// Starts a server with `arguments` added (e.g. `["--requirepass", "secret"]`) on `port` (a free one when
    /// `nil`) and waits until it accepts connections there (at most 10 s). `plainPort` is the `--port` value
    /// (`port` unless given; 0 turns plain TCP off, for a server on `--tls-port port` only).
    public static func start(_ arguments: [String] = [], port: Int? = nil, plainPort: Int? = nil) async throws
        -> RedisServerProcess
    {
        guard let binary else { throw TestFailure(missingMessage) }
        let port = if let port { port } else { try await freePort() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "--port", String(plainPort ?? port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", directory.path, "--daemonize", "no", "--logfile", directory.appendingPathComponent("log").path,
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let server = RedisServerProcess(process: process, port: port, directory: directory)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if await canConnect(port: port) { return server }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        server.stop()
        throw TestFailure("redis-server did not start on port \(port)")
    }

    /// Stops the server by its PID and removes its directory. SIGKILL: it holds nothing to persist, and when
    /// spawned from the test process SIGTERM did not stop it (observed: still running after 5 s; the child
    /// probably inherits a thread's blocked-signal mask).
    public func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Kills the server at once (SIGKILL), as a crash would, and waits for it to exit.
    public func crash() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// A port that was free a moment ago on 127.0.0.1.
    public static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        guard port > 0 else { throw TestFailure("no free port") }
        return port
    }

    private static func canConnect(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(200))
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}

/// Runs `body` with a fresh redis-server, stopped afterwards whatever happens.
public func withRedisServer<T>(
    _ arguments: [String] = [],
    _ body: (RedisServerProcess) async throws -> T
) async throws -> T {
    let server = try await RedisServerProcess.start(arguments)
    do {
        let result = try await body(server)
        server.stop()
        return result
    } catch {
        server.stop()
        throw error
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Fails with `TestFailure` when `body` takes longer than `duration`.
public func withTimeout<T: Sendable>(
    _ duration: Duration,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: duration)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("timed out after \(duration)")
        }
        return value
    }
}

/// The next `count` messages of `messages`; fails with `TestFailure` after `duration` instead of hanging.
public func collect<Messages: AsyncSequence & Sendable>(
    _ messages: Messages,
    count: Int,
    within duration: Duration = .seconds(10)
) async throws -> [Messages.Element] where Messages.Element: Sendable {
    try await withTimeout(duration) {
        var received: [Messages.Element] = []
        guard count > 0 else { return received }
        for try await message in messages {
            received.append(message)
            if received.count == count { break }
        }
        return received
    }
}
