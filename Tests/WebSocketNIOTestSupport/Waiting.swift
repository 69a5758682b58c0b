/// Thrown by ``withTimeout(_:_:)`` when the body did not finish in time.
public struct TestTimeout: Error, CustomStringConvertible {
    public let duration: Duration
    public var description: String { "timed out after \(self.duration)" }
}

/// Runs `body` with a timeout, failing the test instead of hanging.
public func withTimeout<T: Sendable>(
    _ duration: Duration = .seconds(30),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: duration)
            return nil
        }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            throw TestTimeout(duration: duration)
        }
        group.cancelAll()
        return value
    }
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; returns whether it held.
@discardableResult
public func eventually(
    timeout: Duration = .seconds(5),
    _ condition: @Sendable () async -> Bool
) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}
