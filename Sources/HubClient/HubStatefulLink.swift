import HubProtocol
import NIOConcurrencyHelpers
import WebSocketClient

/// The client side of stateful reconnect for one logical connection (HubProtocol.md "Stateful Reconnect"): it
/// outlives the WebSockets that carry the connection.
///
/// Every message goes out through ``send(_:tracked:)``, one at a time (an async lock), so the order on the wire is
/// the order of the sequence ids. Trackable messages are numbered and kept until the server's `Ack`; while more
/// than `bufferSize` bytes wait, senders wait (as ASP.NET Core's and the JS client's buffers do). Without a
/// WebSocket (between a drop and the resume) trackable messages are only kept, others are dropped. ``resume(on:)``
/// sends the `Sequence` and replays what the server has not acknowledged on the new WebSocket.
final class HubStatefulLink: Sendable {
    /// The WebSocket URL with the connection's `id`.
    let webSocketURL: String
    let hubProtocol: HubClientConfiguration.HubProtocolChoice
    let bufferSize: Int
    private let state: NIOLockedValueBox<State>
    private let writeLock = AsyncSerialGate()
    /// Woken by an `Ack`.
    private let space = HubWakeSignal()

    private struct State {
        var buffer = StatefulReconnectBuffer<[UInt8]>()
        var webSocket: WebSocket?
        var ended = false
    }

    init(
        webSocketURL: String, hubProtocol: HubClientConfiguration.HubProtocolChoice, bufferSize: Int,
        webSocket: WebSocket
    ) {
        self.webSocketURL = webSocketURL
        self.hubProtocol = hubProtocol
        self.bufferSize = bufferSize
        self.state = NIOLockedValueBox(State(webSocket: webSocket))
    }

    /// Encodes and sends `message`; trackable messages are kept for a replay. Never fails for a lost WebSocket
    /// (the message is replayed or the connection fails as a whole).
    /// - Throws: ``HubClientError`` `.protocolError` when the message cannot be encoded; `.connectionLost` after
    ///   ``end()``.
    func send(_ message: HubMessage) async throws {
        let bytes = try encode(message)
        let tracked = message.isTrackable
        if tracked { await waitForSpace() }
        await writeLock.enter()
        defer { writeLock.leave() }
        let webSocket = try state.withLockedValue { state -> WebSocket? in
            guard !state.ended else { throw HubClientError(.connectionLost, "the connection was lost") }
            if tracked { state.buffer.append(bytes, bytes: bytes.count) }
            return state.webSocket
        }
        guard let webSocket else { return }
        try? await write(bytes, on: webSocket)
    }

    /// The WebSocket was lost: messages are kept (trackable) or dropped until ``resume(on:)``.
    func detach() {
        state.withLockedValue { $0.webSocket = nil }
    }

    /// The logical connection is over: waiting senders and later sends fail.
    func end() {
        state.withLockedValue {
            $0.ended = true
            $0.webSocket = nil
        }
        space.wake()
    }

    /// Sends the `Sequence` (the oldest unacknowledged id) and replays the unacknowledged messages on `webSocket`,
    /// then makes it the connection's WebSocket. False when that failed.
    func resume(on webSocket: WebSocket) async -> Bool {
        await writeLock.enter()
        defer { writeLock.leave() }
        let (sequenceId, items) = state.withLockedValue { state in
            state.buffer.transportReplaced()
            return (state.buffer.resendSequenceId, state.buffer.unacknowledged)
        }
        do {
            try await write(try encode(.sequence(sequenceId: sequenceId)), on: webSocket)
            for item in items { try await write(item, on: webSocket) }
        } catch {
            return false
        }
        state.withLockedValue { $0.webSocket = webSocket }
        return true
    }

    /// Classifies a received message (numbering, duplicates, `Ack`, `Sequence`).
    func receive(_ message: HubMessage) throws -> StatefulReconnectBuffer<[UInt8]>.Disposition {
        let disposition = try state.withLockedValue { try $0.buffer.receive(message) }
        if disposition == .acknowledged { space.wake() }
        return disposition
    }

    /// The id to acknowledge now, if anything new was received.
    func takeAck() -> Int64? { state.withLockedValue { $0.buffer.takeAck() } }

    /// The bytes waiting for the server's `Ack`.
    var bufferedBytes: Int { state.withLockedValue { $0.buffer.bufferedBytes } }

    private func waitForSpace() async {
        while !Task.isCancelled {
            let ready = state.withLockedValue { $0.ended || $0.buffer.bufferedBytes <= bufferSize }
            if ready { return }
            await space.wait(upTo: .seconds(1))
        }
    }

    private func encode(_ message: HubMessage) throws -> [UInt8] {
        do {
            switch hubProtocol {
            case .json: return try JSONHubProtocol().encode(message)
            case .messagePack: return try MessagePackHubProtocol().encode(message)
            }
        } catch {
            throw HubClientError(.protocolError, "cannot encode the message: \(error)")
        }
    }

    private func write(_ bytes: [UInt8], on webSocket: WebSocket) async throws {
        switch hubProtocol {
        case .json: try await webSocket.send(text: String(decoding: bytes, as: UTF8.self))
        case .messagePack: try await webSocket.send(binary: ByteBuffer(bytes: bytes))
        }
    }
}

/// A flag tasks wait on with a time bound; ``wake()`` sets it and wakes every waiter.
///
/// Several tasks may wait at once (concurrent sends waiting for buffer space): each waiter has its own slot, so a
/// cancelled or timed-out wait resumes only its own continuation.
final class HubWakeSignal: Sendable {
    private struct State {
        var isSet = false
        var nextId: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    func wake() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.isSet = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when woken (clearing the flag), after `duration`, or when cancelled.
    func wait(upTo duration: Duration) async {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let now = self.state.withLockedValue { state -> Bool in
                            if state.isSet || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if now { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                    waiter?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: duration) }
            await group.next()
            group.cancelAll()
        }
        state.withLockedValue { $0.isSet = false }
    }
}
