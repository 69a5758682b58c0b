import NIOConcurrencyHelpers
import NIOCore

/// The server side of one negotiated connection on an HTTP transport (TransportProtocols.md "Server-Sent Events"
/// and "Long Polling"): the bytes of the client's POSTs on their way to the connection's read loop, and, for long
/// polling, the hand-over of outbound messages to polls.
///
/// Bounded: a POST body is at most the hub's maximum message size, only one POST is taken at a time (a second
/// one meanwhile is answered 409), and a POST returns only once the bytes waiting for the read loop are within
/// that size again. Outbound, the long-polling writer offers one message at a time and waits for a poll to take
/// it, so the connection's ``HubOutbox`` holds the rest (and its byte limit applies).
final class HubHTTPSession: Sendable {
    enum Kind: Sendable {
        /// Negotiated, no GET yet (POSTs are buffered).
        case unbound
        case serverSentEvents
        case longPolling
    }

    /// What a poll answers.
    enum PollResult: Sendable {
        /// 200 with these bytes.
        case data(ByteBuffer)
        /// 200 with an empty body: the first poll, or the poll timeout passed.
        case empty
        /// 204: a newer poll took over, or the connection ended.
        case noContent
    }

    enum PostResult: Sendable {
        case accepted
        /// Another POST is being taken: 409.
        case conflict
        /// The connection ended: 404.
        case gone
    }

    let token: String
    let connectionId: String
    let user: HubUser?
    let created: ContinuousClock.Instant
    /// The POST bodies, in order, for the connection's read loop (which calls ``consumed(_:)`` for each).
    let inbound: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let inboundLimit: Int
    private let state: NIOLockedValueBox<State>

    private struct State {
        var kind = Kind.unbound
        /// A connection runs (its GET came).
        var started = false
        var posting = false
        var inboundBytes = 0
        var postWaiter: CheckedContinuation<Void, Never>?
        var ended = false
        var endError: String?
        var firstPollAnswered = false
        var poll: (id: Int, continuation: CheckedContinuation<PollResult, Never>)?
        var nextPollId = 0
        var offer: (bytes: ByteBuffer, continuation: CheckedContinuation<Bool, Never>)?
        /// When the last poll ended (or the session began).
        var lastPoll: ContinuousClock.Instant
    }

    init(token: String, connectionId: String, user: HubUser?, inboundLimit: Int) {
        self.token = token
        self.connectionId = connectionId
        self.user = user
        let now = ContinuousClock.now
        self.created = now
        self.inboundLimit = inboundLimit
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        self.inbound = stream
        self.continuation = continuation
        state = NIOLockedValueBox(State(lastPoll: now))
    }

    var kind: Kind { state.withLockedValue { $0.kind } }
    var isEnded: Bool { state.withLockedValue { $0.ended } }
    var isStarted: Bool { state.withLockedValue { $0.started } }
    /// Why the session ended, when not by the client's or the server's choice (the disconnect timeout).
    var endError: String? { state.withLockedValue { $0.endError } }

    /// Binds an unbound session to `kind`; false when it is bound already (or ended).
    func bind(_ kind: Kind) -> Bool {
        state.withLockedValue { state in
            guard state.kind == .unbound, !state.ended else { return false }
            state.kind = kind
            state.lastPoll = .now
            return true
        }
    }

    /// Its connection runs: from now on whoever runs it forgets the session at the end (before, a session older
    /// than the negotiate timeout is dropped by the next negotiate).
    func markStarted() {
        state.withLockedValue { $0.started = true }
    }

    // MARK: Client to server

    /// Hands a POST body to the read loop; returns when the bytes waiting are within the bound again.
    func post(_ body: [UInt8]) async -> PostResult {
        let admitted = state.withLockedValue { state -> PostResult in
            if state.ended { return .gone }
            if state.posting { return .conflict }
            state.posting = true
            state.inboundBytes += body.count
            return .accepted
        }
        guard case .accepted = admitted else { return admitted }
        continuation.yield(body)
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.ended || state.inboundBytes <= inboundLimit { return true }
                state.postWaiter = waiter
                return false
            }
            if resumeNow { waiter.resume() }
        }
        state.withLockedValue { $0.posting = false }
        return .accepted
    }

    /// The read loop took `count` bytes.
    func consumed(_ count: Int) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.inboundBytes -= count
            guard state.inboundBytes <= inboundLimit else { return nil }
            defer { state.postWaiter = nil }
            return state.postWaiter
        }
        waiter?.resume()
    }

    // MARK: Server to client (long polling)

    /// Offers one message to a poll: returns true once a poll took it, false when the session ended first.
    func offer(_ bytes: ByteBuffer) async -> Bool {
        await withCheckedContinuation { (waiter: CheckedContinuation<Bool, Never>) in
            let poll = state.withLockedValue { state -> CheckedContinuation<PollResult, Never>?? in
                if state.ended { return .some(nil) }
                if let poll = state.poll {
                    state.poll = nil
                    state.lastPoll = .now
                    return .some(poll.continuation)
                }
                state.offer = (bytes, waiter)
                return nil
            }
            switch poll {
            case .some(.some(let poll)):
                poll.resume(returning: .data(bytes))
                waiter.resume(returning: true)
            case .some(.none):
                waiter.resume(returning: false)
            case .none:
                break
            }
        }
    }

    /// A long poll: the first answers ``PollResult/empty`` at once; later ones take the offered message, or wait
    /// for one until `timeout` (then ``PollResult/empty``), a newer poll or the end (``PollResult/noContent``).
    /// A poll cancelled (its client gone) gives up its place.
    func poll(timeout: Duration) async -> PollResult {
        enum Start {
            case answer(PollResult)
            case wait(Int)
        }
        let start = state.withLockedValue { state -> Start in
            if state.ended { return .answer(.noContent) }
            if !state.firstPollAnswered {
                state.firstPollAnswered = true
                state.lastPoll = .now
                return .answer(.empty)
            }
            state.nextPollId += 1
            return .wait(state.nextPollId)
        }
        let id: Int
        switch start {
        case .answer(let result): return result
        case .wait(let pollId): id = pollId
        }
        return await withTaskGroup(of: Void.self) { group -> PollResult in
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.resolvePoll(id, with: .empty)
            }
            let result = await withTaskCancellationHandler {
                await withCheckedContinuation { (waiter: CheckedContinuation<PollResult, Never>) in
                    typealias Poll = CheckedContinuation<PollResult, Never>
                    enum Action {
                        case take(ByteBuffer, CheckedContinuation<Bool, Never>, superseded: Poll?)
                        case finish(PollResult)
                        case wait(superseded: Poll?)
                    }
                    let action = state.withLockedValue { state -> Action in
                        if state.ended || Task.isCancelled { return .finish(.noContent) }
                        let superseded = state.poll?.continuation
                        state.poll = nil
                        if let offer = state.offer {
                            state.offer = nil
                            state.lastPoll = .now
                            return .take(offer.bytes, offer.continuation, superseded: superseded)
                        }
                        state.poll = (id, waiter)
                        return .wait(superseded: superseded)
                    }
                    switch action {
                    case .finish(let result): waiter.resume(returning: result)
                    case .take(let bytes, let offer, let superseded):
                        superseded?.resume(returning: .noContent)
                        offer.resume(returning: true)
                        waiter.resume(returning: .data(bytes))
                    case .wait(let superseded):
                        superseded?.resume(returning: .noContent)
                    }
                }
            } onCancel: {
                self.resolvePoll(id, with: .noContent)
            }
            group.cancelAll()
            return result
        }
    }

    private func resolvePoll(_ id: Int, with result: PollResult) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<PollResult, Never>? in
            guard let poll = state.poll, poll.id == id else { return nil }
            state.poll = nil
            state.lastPoll = .now
            return poll.continuation
        }
        waiter?.resume(returning: result)
    }

    /// Whether a long-polling client has had no poll waiting for `timeout` (it is considered gone).
    func isInactive(now: ContinuousClock.Instant, timeout: Duration) -> Bool {
        state.withLockedValue { state in
            state.kind == .longPolling && state.poll == nil && now - state.lastPoll >= timeout
        }
    }

    // MARK: End

    /// Ends the session: the read loop's inbound stream finishes, a waiting poll gets 204, later requests 404
    /// (POST) or 204 (poll). Runs once.
    func end(error: String?) {
        let (poll, offer, postWaiter) = state.withLockedValue { state in
            guard !state.ended else {
                return (
                    CheckedContinuation<PollResult, Never>?.none, CheckedContinuation<Bool, Never>?.none,
                    CheckedContinuation<Void, Never>?.none
                )
            }
            state.ended = true
            state.endError = error
            defer {
                state.poll = nil
                state.offer = nil
                state.postWaiter = nil
            }
            return (state.poll?.continuation, state.offer?.continuation, state.postWaiter)
        }
        continuation.finish()
        poll?.resume(returning: .noContent)
        offer?.resume(returning: false)
        postWaiter?.resume()
    }
}
