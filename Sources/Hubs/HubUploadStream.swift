import HubProtocol
import NIOConcurrencyHelpers

/// A client-to-server stream (HubProtocol.md "Streaming": an Invocation's `streamIds`, fed by StreamItem messages
/// and ended by a Completion with the stream id): declare a hub method parameter of this type and iterate it.
///
/// Each item is decoded to `Element` as it is read; an item that does not decode, or a Completion with an error,
/// makes the iteration throw. At most ``HubConfiguration/streamBufferCapacity`` items wait for the method; past that
/// the connection stops reading until the method catches up (as ASP.NET Core's `StreamBufferCapacity`). When the
/// method returns, later items of the stream are dropped.
public struct HubUploadStream<Element: Decodable & Sendable>: AsyncSequence, Sendable, Decodable {
    let channel: HubUploadChannel

    init(channel: HubUploadChannel) {
        self.channel = channel
    }

    /// Not decodable from an argument: the server binds it to a stream id. Always throws.
    public init(from decoder: any Decoder) throws {
        throw DecodingError.typeMismatch(
            HubUploadStream.self,
            .init(codingPath: decoder.codingPath, debugDescription: "an upload stream is bound to a stream id"))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: HubUploadChannel

        public mutating func next() async throws -> Element? {
            guard let value = try await channel.next() else { return nil }
            do {
                return try value.decode(Element.self)
            } catch {
                throw HubError("Stream item could not be converted to \(Element.self).")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(channel: channel)
    }
}

/// The parameter types bound to a stream id rather than to an argument.
protocol HubUploadStreamParameter {
    init(channel: HubUploadChannel)
}

extension HubUploadStream: HubUploadStreamParameter {}

/// A bounded single-consumer queue between the connection's read loop (producer) and a hub method (consumer).
///
/// `send` waits while `capacity` items are queued; `finish` ends the stream (items queued before it are still
/// read); `close` is the consumer going away or the connection ending: queued items are dropped and every waiter
/// is resumed.
final class HubUploadChannel: Sendable {
    private struct State {
        var items: [HubValue] = []
        var head = 0
        var end: (any Error)?? = nil
        var closed = false
        var consumer: CheckedContinuation<Void, Never>?
        var producer: CheckedContinuation<Void, Never>?
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Queues an item, waiting while the queue is full; returns at once when the channel is closed or finished.
    func send(_ value: HubValue) async {
        while true {
            let full: Bool = state.withLockedValue { state in
                if state.closed || state.end != nil { return false }
                return state.items.count - state.head >= capacity
            }
            if !full { break }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.closed || state.end != nil || state.items.count - state.head < capacity { return true }
                    state.producer = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        let consumer = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard !state.closed, state.end == nil else { return nil }
            state.items.append(value)
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume()
    }

    /// Ends the stream after the queued items: normally (`error` nil) or with an error.
    func finish(error: (any Error)?) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            if state.end == nil { state.end = .some(error) }
            defer {
                state.consumer = nil
                state.producer = nil
            }
            return [state.consumer, state.producer].compactMap { $0 }
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Drops everything and wakes every waiter: the method returned or the connection ended.
    func close() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            state.items = []
            state.head = 0
            defer {
                state.consumer = nil
                state.producer = nil
            }
            return [state.consumer, state.producer].compactMap { $0 }
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The next item; nil at the end (or when closed); throws the error the stream was finished with.
    func next() async throws -> HubValue? {
        while true {
            let outcome = state.withLockedValue { state -> (value: HubValue?, done: Bool, error: (any Error)?) in
                if state.closed { return (nil, true, nil) }
                if state.head < state.items.count {
                    let value = state.items[state.head]
                    state.head += 1
                    if state.head > 64, state.head * 2 > state.items.count {
                        state.items.removeSubrange(0..<state.head)
                        state.head = 0
                    }
                    return (value, true, nil)
                }
                if let end = state.end { return (nil, true, end) }
                return (nil, false, nil)
            }
            if outcome.done {
                let producer = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                    defer { state.producer = nil }
                    return state.producer
                }
                producer?.resume()
                if let error = outcome.error { throw error }
                return outcome.value
            }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLockedValue { state -> Bool in
                        if state.closed || state.end != nil || state.head < state.items.count { return true }
                        state.consumer = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.close()
            }
        }
    }
}
