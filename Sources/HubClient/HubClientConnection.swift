import HubProtocol
import NIOConcurrencyHelpers
import WebSocketClient

/// A client for a SignalR-protocol hub over WebSockets (HubProtocol.md, TransportProtocols.md): negotiate,
/// handshake, invocations, streams in both directions, client results, keep-alive and automatic reconnection.
///
/// ```swift
/// let hub = HubClientConnection(url: "http://127.0.0.1:8080/chat")
/// hub.on("Message") { (user: String, text: String) in print(user, text) }
/// try await hub.withRunning { hub in
///     try await hub.send("Send", "ann", "hello")
///     let sum = try await hub.invoke("Add", 1, 2, returning: Int.self)
/// }
/// ```
///
/// **Lifetime.** The connection lives while ``run()`` runs: its read loop, the handler queue, the keep-alive
/// timer and reconnection are child tasks of that call, so nothing outlives it and cancelling it closes the
/// connection (no unstructured task). Either call ``withRunning(_:)``, which runs ``run()`` next to `body` and
/// stops it when `body` returns, or place ``run()`` in your own task group (or a swift-service-lifecycle
/// service) and call ``waitUntilConnected()`` before invoking.
///
/// Register handlers (``on(_:_:)-(_,(repeat each A)->Void)``) before running, so messages the server sends right after
/// the handshake are not missed. Method names match case-insensitively, as in the other SignalR clients.
///
/// Invocations pending when the connection is lost fail with ``HubClientError/Kind/connectionLost``;
/// with ``HubClientConfiguration/reconnectDelays`` set the connection then reconnects (a new connection id:
/// groups must be joined again), reporting it on ``events``. With
/// ``HubClientConfiguration/useStatefulReconnect`` a lost WebSocket is first replaced by a new one to the same
/// logical connection, and nothing fails.
public final class HubClientConnection: Sendable {
    /// The hub URL (`http(s)://` or `ws(s)://`).
    public let url: String
    /// The settings the connection was created with (protocol, token provider, timeouts, limits).
    public let configuration: HubClientConfiguration
    /// Reconnecting, reconnected and closed events, in order. One consumer; the newest 64 are kept.
    public let events: AsyncStream<HubClientEvent>

    private let eventSink: AsyncStream<HubClientEvent>.Continuation
    private let state = NIOLockedValueBox(State())

    /// Creates a connection; nothing happens until ``run()`` or ``withRunning(_:)``.
    public init(url: String, configuration: HubClientConfiguration = .init()) {
        self.url = url
        self.configuration = configuration
        (events, eventSink) = AsyncStream.makeStream(of: HubClientEvent.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// The server's id for the current connection (nil when not connected or with `skipNegotiation`).
    public var connectionId: String? { state.withLockedValue { $0.session?.connectionId } }

    /// Whether a connection is open (handshake done, not reconnecting or closed).
    public var isConnected: Bool { state.withLockedValue { $0.session != nil } }

    // MARK: Lifetime

    /// Runs ``run()`` while `body` runs, once connected; stops the connection when `body` returns or throws.
    /// - Throws: the ``HubClientError`` of the first connection attempt, or what `body` throws.
    public func withRunning<Result: Sendable>(_ body: (HubClientConnection) async throws -> Result) async throws
        -> Result
    {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            do {
                try await waitUntilConnected()
                let result = try await body(self)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// Waits until ``run()`` has opened its first connection.
    /// - Throws: the ``HubClientError`` of a failed first attempt, or `.connectionLost` when the connection is
    ///   already over.
    public func waitUntilConnected() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result = state.withLockedValue { state -> Result<Void, HubClientError>? in
                if let result = state.startResult { return result }
                state.startWaiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(with: result.mapError { $0 as any Error }) }
        }
    }

    /// Connects (negotiate, WebSocket, handshake), then serves the connection until the task is cancelled or the
    /// connection is over for good (closed by the server without `allowReconnect`, or reconnection gave up).
    /// Returns normally in both cases; ``events`` says which.
    /// - Throws: ``HubClientError`` when the first connection attempt fails (`.unauthorized` for a 401,
    ///   `.negotiateFailed`, `.transportFailed`, `.handshakeFailed`, `.invalidURL`), or `.alreadyRunning`.
    public func run() async throws {
        let first = state.withLockedValue { state -> Bool in
            guard !state.running else { return false }
            state.running = true
            state.startResult = nil
            return true
        }
        guard first else { throw HubClientError(.alreadyRunning) }
        var opened: Opened
        do {
            opened = try await connect()
        } catch {
            let failure = Self.clientError(error)
            finish(failure)
            eventSink.yield(.closed(failure))
            throw failure
        }
        state.withLockedValue { $0.session = opened.session }
        resolveStart(.success(()))
        while true {
            let end = await runSession(opened)
            opened.session.link?.detach()
            if end.transportDropped, !Task.isCancelled, let link = opened.session.link,
                let resumed = await resumeStateful(link, previous: opened.session)
            {
                opened = resumed
                state.withLockedValue { $0.session = resumed.session }
                continue
            }
            detach(because: end.error)
            opened.session.link?.end()
            if Task.isCancelled { return stop(nil) }
            guard let delays = configuration.reconnectDelays, end.allowReconnect else { return stop(end.error) }
            eventSink.yield(.reconnecting(end.error))
            var lastError = end.error
            var reopened: Opened?
            for delay in delays {
                do { try await Task.sleep(for: delay) } catch { break }
                do {
                    reopened = try await connect()
                    break
                } catch {
                    lastError = Self.clientError(error)
                    if Task.isCancelled { break }
                }
            }
            if Task.isCancelled { return stop(nil) }
            guard let reopened else { return stop(lastError) }
            opened = reopened
            state.withLockedValue { $0.session = reopened.session }
            eventSink.yield(.reconnected(connectionId: reopened.session.connectionId))
        }
    }

    private func stop(_ error: HubClientError?) {
        finish(error ?? HubClientError(.connectionLost, "the connection was stopped"))
        eventSink.yield(.closed(error))
    }

    private func finish(_ error: HubClientError) {
        let waiters = state.withLockedValue { state in
            state.running = false
            state.session = nil
            state.startResult = .failure(error)
            defer { state.startWaiters = [] }
            return state.startWaiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    private func resolveStart(_ result: Result<Void, HubClientError>) {
        let waiters = state.withLockedValue { state in
            state.startResult = result
            defer { state.startWaiters = [] }
            return state.startWaiters
        }
        for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
    }

    /// Forgets the session and fails what waited on it.
    private func detach(because error: HubClientError) {
        let lost = HubClientError(.connectionLost, error.description)
        let (pending, streams) = state.withLockedValue { state in
            state.session = nil
            defer {
                state.pending = [:]
                state.streams = [:]
            }
            return (state.pending, state.streams)
        }
        for (_, call) in pending {
            if case .waiting(let continuation?) = call { continuation.resume(throwing: lost) }
        }
        for (_, sink) in streams { sink.finish(lost) }
    }

    // MARK: Calls

    /// Invokes a hub method and waits for its Completion (HubProtocol.md "Invocation", "Completion").
    /// - Parameters:
    ///   - method: the hub method's name.
    ///   - arguments: its arguments, each `Encodable` (encoded with the connection's protocol).
    ///   - returning: the type the result decodes to (use an Optional for a method that may return nothing).
    /// - Throws: ``HubInvocationError`` with the server's message when the method failed; ``HubClientError``
    ///   `.notConnected`, `.connectionLost`, `.protocolError` (the result does not decode); `CancellationError`.
    public func invoke<each A: Encodable & Sendable, T: Decodable>(
        _ method: String, _ arguments: repeat each A, returning: T.Type
    ) async throws -> T {
        let result = try await invokeCore(method, Self.values(repeat each arguments), upload: nil)
        return try Self.decode(result, as: T.self)
    }

    /// Invokes a hub method without a result and waits for its Completion.
    /// - Throws: as ``invoke(_:_:returning:)``.
    public func invoke<each A: Encodable & Sendable>(_ method: String, _ arguments: repeat each A) async throws {
        let result = try await invokeCore(method, Self.values(repeat each arguments), upload: nil)
        if case .error(let message) = result { throw HubInvocationError(message: message) }
    }

    /// Invokes a hub method with a client-to-server stream as its last parameter (HubProtocol.md "Streaming"):
    /// the Invocation carries a stream id, each element of `stream` goes as a StreamItem, and the end of the
    /// sequence as a Completion (with `error` when it throws). Waits for the method's Completion; when it comes
    /// first, the iteration of `stream` is cancelled.
    /// - Throws: as ``invoke(_:_:returning:)``.
    public func invoke<each A: Encodable & Sendable, S: AsyncSequence & Sendable, T: Decodable>(
        _ method: String, _ arguments: repeat each A, uploading stream: S, returning: T.Type
    ) async throws -> T where S.Element: Encodable & Sendable {
        let upload: Upload = { streamId, session in
            do {
                for try await element in stream {
                    try await self.write(
                        .streamItem(.init(invocationId: streamId, item: HubValue(element))), session)
                }
            } catch let error as HubClientError {
                throw error
            } catch is CancellationError {
                return
            } catch {
                try await self.write(.completion(.init(invocationId: streamId, result: .error("\(error)"))), session)
                return
            }
            try await self.write(.completion(.init(invocationId: streamId, result: .void)), session)
        }
        let result = try await invokeCore(method, Self.values(repeat each arguments), upload: upload)
        return try Self.decode(result, as: T.self)
    }

    /// Sends an Invocation without an id: the server answers nothing (SignalR's `send`). Returns once written.
    /// - Throws: ``HubClientError`` `.notConnected`, `.connectionLost`, `.protocolError`.
    public func send<each A: Encodable & Sendable>(_ method: String, _ arguments: repeat each A) async throws {
        let session = try state.withLockedValue { state in
            guard let session = state.session else { throw HubClientError(.notConnected) }
            return session
        }
        let message = HubMessage.invocation(
            .init(invocationId: nil, target: method, arguments: Self.values(repeat each arguments)))
        try await write(message, session)
    }

    /// Calls a streaming hub method (StreamInvocation) and returns its items as they arrive. The sequence ends
    /// at the server's Completion (throwing ``HubInvocationError`` when it carries an error) and throws
    /// ``HubClientError`` `.connectionLost` when the connection is lost. Ending the iteration early (a `break`,
    /// the consuming task cancelled) sends CancelInvocation. At most ``HubClientConfiguration/streamBufferLimit``
    /// items wait to be read; one more ends the sequence with ``HubClientError`` `.slowConsumer` and cancels
    /// the stream on the server.
    /// - Throws: ``HubClientError`` `.notConnected` or `.connectionLost` when the StreamInvocation cannot be sent.
    public func stream<each A: Encodable & Sendable, T: Decodable & Sendable>(
        _ method: String, _ arguments: repeat each A, of: T.Type
    ) async throws -> AsyncThrowingStream<T, any Error> {
        let limit = max(1, configuration.streamBufferLimit)
        let (items, continuation) = AsyncThrowingStream.makeStream(
            of: T.self, throwing: (any Error).self, bufferingPolicy: .bufferingOldest(limit))
        let (session, id) = try state.withLockedValue { state in
            guard let session = state.session else { throw HubClientError(.notConnected) }
            let id = state.makeInvocationId()
            state.streams[id] = StreamSink(
                item: { [weak self] value in
                    do {
                        if case .dropped = continuation.yield(try value.decode(T.self)) {
                            let wasOpen = self?.state.withLockedValue { $0.streams.removeValue(forKey: id) != nil }
                            if wasOpen == true {
                                self?.control(session).yield(.cancelInvocation(.init(invocationId: id)))
                            }
                            continuation.finish(
                                throwing: HubClientError(
                                    .slowConsumer, "more than \(limit) stream items were waiting to be read"))
                        }
                    } catch {
                        continuation.finish(
                            throwing: HubClientError(.protocolError, "a stream item is not a \(T.self): \(error)"))
                    }
                },
                finish: { error in
                    continuation.finish(throwing: error)
                })
            return (session, id)
        }
        continuation.onTermination = { [weak self] termination in
            guard case .cancelled = termination, let self else { return }
            let wasOpen = self.state.withLockedValue { $0.streams.removeValue(forKey: id) != nil }
            if wasOpen { self.control(session).yield(.cancelInvocation(.init(invocationId: id))) }
        }
        do {
            try await write(
                .streamInvocation(
                    .init(invocationId: id, target: method, arguments: Self.values(repeat each arguments))),
                session)
        } catch {
            state.withLockedValue { _ = $0.streams.removeValue(forKey: id) }
            continuation.finish(throwing: error)
            throw error
        }
        return items
    }

    // MARK: Handlers

    /// Registers a handler for the server's invocations of `method` (HubProtocol.md "Invocation"); its
    /// parameters decode from the arguments in order (a missing or mistyped argument skips the call). Handlers
    /// run one at a time, in arrival order, apart from the read loop (a handler may invoke the server).
    public func on<each A: Decodable & Sendable>(
        _ method: String, _ handler: @escaping @Sendable (repeat each A) async throws -> Void
    ) {
        let entry = Handler(returnsResult: false) { values in
            var reader = ArgumentReader(values: values)
            try await handler(repeat try reader.next((each A).self))
            return nil
        }
        state.withLockedValue { $0.handlers[method.lowercased(), default: []].append(entry) }
    }

    /// Registers a handler that answers the server's invocations of `method` that carry an id (client results,
    /// HubProtocol.md "Client results"): its value goes back in a Completion, what it throws as the
    /// Completion's error.
    public func on<each A: Decodable & Sendable, R: Encodable & Sendable>(
        _ method: String, _ handler: @escaping @Sendable (repeat each A) async throws -> R
    ) {
        let entry = Handler(returnsResult: true) { values in
            var reader = ArgumentReader(values: values)
            return HubValue(try await handler(repeat try reader.next((each A).self)))
        }
        state.withLockedValue { $0.handlers[method.lowercased(), default: []].append(entry) }
    }

    /// Removes every handler of `method`.
    public func off(_ method: String) {
        state.withLockedValue { _ = $0.handlers.removeValue(forKey: method.lowercased()) }
    }

    /// Registers a handler for a client method of a contract (``HubProtocol/ClientMethod``): the handler's
    /// parameters are the descriptor's, so the compiler checks them, and the method name comes from the
    /// descriptor. Otherwise as the untyped `on("Name") { … }`: arguments that do not decode to the declared types
    /// skip the call.
    public func on<each Argument: Decodable & Sendable>(
        _ method: ClientMethod<(repeat each Argument) -> Void>,
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Void
    ) {
        on(method.name, handler)
    }

    /// Registers the handler that answers a client method of a contract whose descriptor declares a result
    /// (client results, HubProtocol.md "Client results"): it must return the declared result type, which goes back
    /// in the Completion; what it throws goes back as the Completion's error.
    public func on<each Argument: Decodable & Sendable, Result: Encodable & Sendable>(
        _ method: ClientMethod<(repeat each Argument) -> Result>,
        _ handler: @escaping @Sendable (repeat each Argument) async throws -> Result
    ) {
        on(method.name, handler)
    }

    /// Removes every handler of a contract's client method.
    public func off<Signature>(_ method: ClientMethod<Signature>) {
        off(method.name)
    }
}

// MARK: - Internals

extension HubClientConnection {
    typealias Upload = @Sendable (_ streamId: String, _ session: Session) async throws -> Void

    enum PendingCall: Sendable {
        case waiting(CheckedContinuation<HubMessage.Completion.Result, any Error>?)
        case arrived(HubMessage.Completion.Result)
    }

    struct StreamSink: Sendable {
        let item: @Sendable (HubValue) -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    struct Handler: Sendable {
        let returnsResult: Bool
        let call: @Sendable ([HubValue]) async throws -> HubValue?
    }

    struct State {
        var running = false
        var session: Session?
        var nextInvocationId = 0
        var pending: [String: PendingCall] = [:]
        var streams: [String: StreamSink] = [:]
        var handlers: [String: [Handler]] = [:]
        var startResult: Result<Void, HubClientError>?
        var startWaiters: [CheckedContinuation<Void, any Error>] = []

        mutating func makeInvocationId() -> String {
            defer { nextInvocationId += 1 }
            return String(nextInvocationId)
        }
    }

    /// One open WebSocket after a successful handshake.
    final class Session: Sendable {
        let webSocket: WebSocket
        let hubProtocol: HubClientConfiguration.HubProtocolChoice
        let connectionId: String?
        /// Messages sent from synchronous contexts (CancelInvocation when a stream's consumer goes away).
        let control: AsyncStream<HubMessage>.Continuation
        let controlMessages: AsyncStream<HubMessage>
        let lastReceived = NIOLockedValueBox(ContinuousClock.now)
        let timedOut = NIOLockedValueBox(false)
        /// Stateful reconnect, when negotiated: shared by the sessions of one logical connection.
        let link: HubStatefulLink?

        init(
            webSocket: WebSocket, hubProtocol: HubClientConfiguration.HubProtocolChoice, connectionId: String?,
            link: HubStatefulLink? = nil
        ) {
            self.webSocket = webSocket
            self.hubProtocol = hubProtocol
            self.connectionId = connectionId
            self.link = link
            (controlMessages, control) = AsyncStream.makeStream(of: HubMessage.self)
        }
    }

    struct Opened {
        let session: Session
        var iterator: WebSocketInboundMessages.AsyncIterator
        var leftover: [UInt8]
    }

    struct SessionEnd: Sendable {
        var error: HubClientError
        var allowReconnect: Bool
        /// The WebSocket ended without a close frame: a stateful connection resumes.
        var transportDropped = false
    }

    struct ArgumentReader {
        let values: [HubValue]
        var index = 0

        mutating func next<T: Decodable>(_ type: T.Type) throws -> T {
            guard index < values.count else {
                throw HubClientError(.protocolError, "argument \(index) of type \(T.self) is missing")
            }
            defer { index += 1 }
            return try values[index].decode(type)
        }
    }

    static func values<each A: Encodable & Sendable>(_ arguments: repeat each A) -> [HubValue] {
        var values: [HubValue] = []
        for argument in repeat each arguments { values.append(HubValue(argument)) }
        return values
    }

    static func decode<T: Decodable>(_ result: HubMessage.Completion.Result, as type: T.Type) throws -> T {
        switch result {
        case .error(let message):
            throw HubInvocationError(message: message)
        case .value(let value):
            do { return try value.decode(T.self) } catch {
                throw HubClientError(.protocolError, "the result is not a \(T.self): \(error)")
            }
        case .void:
            do { return try HubValue.json(.null).decode(T.self) } catch {
                throw HubClientError(.protocolError, "the method returned no result, expected \(T.self)")
            }
        }
    }

    static func clientError(_ error: any Error) -> HubClientError {
        if let error = error as? HubClientError { return error }
        if error is CancellationError { return HubClientError(.connectionLost, "cancelled") }
        return HubClientError(.transportFailed, "\(error)")
    }

    // MARK: Sending

    /// The control queue of the current session (a stateful reconnect replaces the session), else `session`'s.
    func control(_ session: Session) -> AsyncStream<HubMessage>.Continuation {
        state.withLockedValue { $0.session }?.control ?? session.control
    }

    func write(_ message: HubMessage, _ session: Session) async throws {
        if let link = session.link {
            try await link.send(message)
            return
        }
        let bytes: [UInt8]
        do {
            switch session.hubProtocol {
            case .json: bytes = try JSONHubProtocol().encode(message)
            case .messagePack: bytes = try MessagePackHubProtocol().encode(message)
            }
        } catch {
            throw HubClientError(.protocolError, "cannot encode the message: \(error)")
        }
        do {
            switch session.hubProtocol {
            case .json: try await session.webSocket.send(text: String(decoding: bytes, as: UTF8.self))
            case .messagePack: try await session.webSocket.send(binary: ByteBuffer(bytes: bytes))
            }
        } catch {
            throw HubClientError(.connectionLost, "the message could not be sent: \(error)")
        }
    }

    func invokeCore(_ method: String, _ arguments: [HubValue], upload: Upload?) async throws
        -> HubMessage.Completion.Result
    {
        let (session, id, streamId) = try state.withLockedValue { state in
            guard let session = state.session else { throw HubClientError(.notConnected) }
            let id = state.makeInvocationId()
            state.pending[id] = .waiting(nil)
            return (session, id, upload == nil ? nil : state.makeInvocationId())
        }
        let message = HubMessage.invocation(
            .init(invocationId: id, target: method, arguments: arguments, streamIds: streamId.map { [$0] } ?? []))
        do {
            try await write(message, session)
        } catch {
            state.withLockedValue { _ = $0.pending.removeValue(forKey: id) }
            throw error
        }
        guard let upload, let streamId else { return try await completion(of: id) }
        return try await withThrowingTaskGroup(of: HubMessage.Completion.Result?.self) { group in
            group.addTask { try await self.completion(of: id) }
            group.addTask {
                try await upload(streamId, session)
                return nil
            }
            while let next = try await group.next() {
                if let result = next {
                    group.cancelAll()
                    return result
                }
            }
            throw HubClientError(.connectionLost)
        }
    }

    /// Waits for the Completion of `id` (registered as pending before the Invocation was sent).
    func completion(of id: String) async throws -> HubMessage.Completion.Result {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLockedValue { state -> Result<HubMessage.Completion.Result, any Error>? in
                    switch state.pending[id] {
                    case .arrived(let result)?:
                        state.pending[id] = nil
                        return .success(result)
                    case .waiting?:
                        if Task.isCancelled {
                            state.pending[id] = nil
                            return .failure(CancellationError())
                        }
                        state.pending[id] = .waiting(continuation)
                        return nil
                    case nil:
                        return .failure(HubClientError(.connectionLost, "the connection was lost"))
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let call = state.withLockedValue { $0.pending.removeValue(forKey: id) }
            if case .waiting(let continuation?)? = call { continuation.resume(throwing: CancellationError()) }
        }
    }

    // MARK: Connecting

    func connect() async throws -> Opened {
        guard var url = HubURL(self.url) else { throw HubClientError(.invalidURL, self.url) }
        var token = try await configuration.accessTokenProvider?()
        var connectionId: String?
        var transportId: String?
        var stateful = false
        if !configuration.skipNegotiation {
            var redirects = 0
            negotiating: while true {
                var headers = configuration.headers.map { ($0.name, $0.value) }
                if let token { headers.append(("Authorization", "Bearer \(token)")) }
                #if TLS
                    let tls = configuration.webSocket.tls
                #else
                    let tls: Void = ()
                #endif
                let response = try await HubNegotiatePost.post(
                    url: url,
                    target: url.negotiateTarget + (configuration.useStatefulReconnect ? "&useStatefulReconnect=true" : ""),
                    headers: headers, timeout: configuration.handshakeTimeout,
                    tls: tls)
                if response.status == 401 {
                    throw HubClientError(.unauthorized, "negotiate was refused", status: 401)
                }
                guard response.status == 200 else {
                    throw HubClientError(
                        .negotiateFailed, String(decoding: response.body.prefix(200), as: UTF8.self),
                        status: response.status)
                }
                let parsed: NegotiateResponse
                do { parsed = try NegotiateResponse.parse(response.body) } catch {
                    throw HubClientError(.negotiateFailed, "bad negotiate body: \(error)", status: 200)
                }
                switch parsed {
                case .error(let message):
                    throw HubClientError(.negotiateFailed, message, status: 200)
                case .redirect(let target, let newToken):
                    redirects += 1
                    guard redirects <= configuration.maxNegotiateRedirects else {
                        throw HubClientError(.negotiateFailed, "more than \(redirects - 1) negotiate redirects")
                    }
                    guard let next = HubURL(target) else { throw HubClientError(.negotiateFailed, "bad url \(target)") }
                    url = next
                    if let newToken { token = newToken }
                case .connection(let connection):
                    let format: TransferFormats = configuration.hubProtocol == .json ? .text : .binary
                    guard
                        connection.availableTransports.contains(where: {
                            $0.transport == .webSockets && $0.transferFormats.contains(format)
                        })
                    else {
                        throw HubClientError(.negotiateFailed, "the server offers no WebSocket transport", status: 200)
                    }
                    connectionId = connection.connectionId
                    transportId = connection.transportId
                    // The JS client refuses a server that turns it on unasked; we simply do not use it then.
                    stateful = configuration.useStatefulReconnect && connection.useStatefulReconnect
                    break negotiating
                }
            }
        }
        let webSocketURL = url.webSocketURL(id: transportId)
        let webSocket = try await openWebSocket(webSocketURL, token: token)
        return try await handshake(
            webSocket, connectionId: connectionId, statefulURL: stateful ? webSocketURL : nil)
    }

    /// Opens the WebSocket (with the configured headers and the token).
    func openWebSocket(_ webSocketURL: String, token: String?) async throws -> WebSocket {
        var webSocketConfiguration = configuration.webSocket
        for (name, value) in configuration.headers {
            if let fieldName = HTTPField.Name(name) { webSocketConfiguration.headerFields[fieldName] = value }
        }
        if let token { webSocketConfiguration.headerFields[.authorization] = "Bearer \(token)" }
        webSocketConfiguration.connectTimeout = configuration.handshakeTimeout
        do {
            return try await WebSocket.connect(to: webSocketURL, configuration: webSocketConfiguration)
        } catch {
            if error.response?.status.code == 401 {
                throw HubClientError(.unauthorized, "the WebSocket upgrade was refused", status: 401)
            }
            throw HubClientError(.transportFailed, "\(error)", status: error.response.map { $0.status.code })
        }
    }

    /// Stateful reconnect: a new WebSocket to the same `id` (no negotiate, no handshake), then the `Sequence` and
    /// the replay. Called after every drop, so a connection resumes as often as its WebSocket drops. An attempt
    /// that fails on the way (no answer to the upgrade: the network is still down; the new WebSocket dropped
    /// during the replay) is repeated after 0.1, 0.25, 0.5, then every 1 s, for at most
    /// ``HubClientConfiguration/statefulReconnectTimeout`` from the drop. Nil when the server refuses (an HTTP
    /// answer such as 404 once the connection is gone, or a close frame), time is up, or the task is cancelled.
    func resumeStateful(_ link: HubStatefulLink, previous: Session) async -> Opened? {
        let deadline = ContinuousClock.now + configuration.statefulReconnectTimeout
        let backoff: [Duration] = [.milliseconds(100), .milliseconds(250), .milliseconds(500)]
        var attempt = 0
        while !Task.isCancelled {
            switch await resumeOnce(link, previous: previous) {
            case .resumed(let opened):
                return opened
            case .refused:
                return nil
            case .failed:
                let delay = attempt < backoff.count ? backoff[attempt] : .seconds(1)
                attempt += 1
                guard ContinuousClock.now + delay < deadline else { return nil }
                do { try await Task.sleep(for: delay) } catch { return nil }
            }
        }
        return nil
    }

    enum ResumeAttempt {
        case resumed(Opened)
        /// The server answered: the connection is gone (or the token is refused).
        case refused
        /// The transport failed: worth another attempt.
        case failed
    }

    /// One attempt of ``resumeStateful(_:previous:)``.
    func resumeOnce(_ link: HubStatefulLink, previous: Session) async -> ResumeAttempt {
        let webSocket: WebSocket
        do {
            let token = try await configuration.accessTokenProvider?()
            webSocket = try await openWebSocket(link.webSocketURL, token: token)
        } catch let error as HubClientError {
            // An HTTP status is the server's answer; none means the upgrade never got one.
            return error.status == nil && error.kind == .transportFailed ? .failed : .refused
        } catch {
            return .refused
        }
        guard await link.resume(on: webSocket) else {
            let status = await webSocket.close()
            return status.code == .abnormalClosure ? .failed : .refused
        }
        let session = Session(
            webSocket: webSocket, hubProtocol: previous.hubProtocol, connectionId: previous.connectionId, link: link)
        return .resumed(Opened(session: session, iterator: webSocket.messages.makeAsyncIterator(), leftover: []))
    }

    /// Sends the handshake request and reads the answer (HubProtocol.md "Overview"; the first frame must hold
    /// `{}` + 0x1E, possibly followed by messages).
    func handshake(_ webSocket: WebSocket, connectionId: String?, statefulURL: String?) async throws -> Opened {
        // Version 2 asks for Ack and Sequence (stateful reconnect); the official clients send 1 otherwise.
        let request = HandshakeRequest(
            protocolName: configuration.hubProtocol.rawValue, version: statefulURL == nil ? 1 : 2)
        var iterator = webSocket.messages.makeAsyncIterator()
        let channel = webSocket.channel
        let timer = channel.eventLoop.scheduleTask(in: HubNegotiatePost.timeAmount(configuration.handshakeTimeout)) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            try await webSocket.send(text: String(decoding: request.encoded(), as: UTF8.self))
        } catch {
            throw HubClientError(.handshakeFailed, "cannot send the handshake: \(error)")
        }
        guard let frame = await iterator.next() else {
            let status = await webSocket.closeStatus
            throw HubClientError(.handshakeFailed, "the connection closed before the handshake answer (\(status))")
        }
        let bytes = Array(frame.payload.readableBytesView)
        let parsed: (response: HandshakeResponse, remainderOffset: Int)?
        do { parsed = try HandshakeResponse.parse(bytes) } catch {
            await webSocket.close(code: .protocolError)
            throw HubClientError(.handshakeFailed, "bad handshake answer: \(error)")
        }
        guard let parsed else {
            await webSocket.close(code: .protocolError)
            throw HubClientError(.handshakeFailed, "the handshake answer has no record separator")
        }
        if case .error(let message) = parsed.response {
            await webSocket.close()
            throw HubClientError(.handshakeFailed, message)
        }
        let link = statefulURL.map {
            HubStatefulLink(
                webSocketURL: $0, hubProtocol: configuration.hubProtocol,
                bufferSize: configuration.statefulReconnectBufferSize, webSocket: webSocket)
        }
        let session = Session(
            webSocket: webSocket, hubProtocol: configuration.hubProtocol, connectionId: connectionId, link: link)
        return Opened(session: session, iterator: iterator, leftover: Array(bytes[parsed.remainderOffset...]))
    }

    // MARK: Serving

    /// Runs one connection: the read loop here, handlers, control messages and the timer as child tasks.
    func runSession(_ opened: Opened) async -> SessionEnd {
        let session = opened.session
        var iterator = opened.iterator
        let (invocations, invocationSink) = AsyncStream.makeStream(
            of: HubMessage.Invocation.self,
            bufferingPolicy: .bufferingOldest(max(1, configuration.invocationQueueLimit)))
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await invocation in invocations { await self.dispatch(invocation, session) }
            }
            group.addTask {
                for await message in session.controlMessages { try? await self.write(message, session) }
            }
            group.addTask { await self.keepAlive(session) }
            if let link = session.link {
                // An Ack for what was received, each second (ASP.NET Core's and the JS client's rate).
                group.addTask {
                    while (try? await Task.sleep(for: .seconds(1))) != nil {
                        if let ack = link.takeAck() { try? await link.send(.ack(sequenceId: ack)) }
                    }
                }
            }
            var end = self.process(opened.leftover, session, invocationSink)
            while end == nil, let frame = await iterator.next() {
                session.lastReceived.withLockedValue { $0 = .now }
                end = self.process(Array(frame.payload.readableBytesView), session, invocationSink)
            }
            if end != nil { await session.webSocket.close() }
            invocationSink.finish()
            session.control.finish()
            group.cancelAll()
            if let end { return end }
            let status = await session.webSocket.closeStatus
            if session.timedOut.withLockedValue({ $0 }) {
                return SessionEnd(
                    error: HubClientError(
                        .serverTimeout, "no message from the server within \(self.configuration.serverTimeout)"),
                    allowReconnect: true)
            }
            return SessionEnd(
                error: HubClientError(.connectionLost, "the WebSocket closed (\(status))"), allowReconnect: true,
                transportDropped: status.code == .abnormalClosure)
        }
    }

    /// Handles the messages of one frame; a SessionEnd for a Close message or an undecodable frame.
    func process(
        _ bytes: [UInt8], _ session: Session, _ invocations: AsyncStream<HubMessage.Invocation>.Continuation
    ) -> SessionEnd? {
        guard !bytes.isEmpty else { return nil }
        var messages: [HubMessage] = []
        do {
            switch session.hubProtocol {
            case .json: try JSONHubProtocol().decode(frame: bytes, into: &messages)
            case .messagePack: try MessagePackHubProtocol().decode(frame: bytes, into: &messages)
            }
        } catch {
            return SessionEnd(error: HubClientError(.protocolError, "\(error)"), allowReconnect: false)
        }
        for message in messages {
            if let link = session.link {
                do {
                    guard try link.receive(message) == .process else { continue }
                } catch {
                    return SessionEnd(error: HubClientError(.protocolError, "\(error)"), allowReconnect: false)
                }
            }
            switch message {
            case .invocation(let invocation):
                if case .dropped = invocations.yield(invocation) {
                    let limit = configuration.invocationQueueLimit
                    return SessionEnd(
                        error: HubClientError(
                            .slowConsumer, "more than \(limit) server invocations were waiting for the handlers"),
                        allowReconnect: true)
                }
            case .streamItem(let item):
                let sink = state.withLockedValue { $0.streams[item.invocationId] }
                sink?.item(item.item)
            case .completion(let completion):
                complete(completion)
            case .close(let close):
                return SessionEnd(
                    error: HubClientError(.serverClosed, close.error ?? ""), allowReconnect: close.allowReconnect)
            case .ping, .streamInvocation, .cancelInvocation, .ack, .sequence:
                break
            }
        }
        return nil
    }

    func complete(_ completion: HubMessage.Completion) {
        enum Target {
            case call(CheckedContinuation<HubMessage.Completion.Result, any Error>)
            case stream(StreamSink)
            case none
        }
        let id = completion.invocationId
        let target = state.withLockedValue { state -> Target in
            if let sink = state.streams.removeValue(forKey: id) { return .stream(sink) }
            switch state.pending[id] {
            case .waiting(let continuation?)?:
                state.pending[id] = nil
                return .call(continuation)
            case .waiting(nil)?:
                state.pending[id] = .arrived(completion.result)
                return .none
            case .arrived?, nil:
                return .none
            }
        }
        switch target {
        case .call(let continuation):
            continuation.resume(returning: completion.result)
        case .stream(let sink):
            if case .error(let message) = completion.result {
                sink.finish(HubInvocationError(message: message))
            } else {
                sink.finish(nil)
            }
        case .none:
            break
        }
    }

    /// Calls the handlers of an Invocation; answers one with an id with a Completion (client results).
    func dispatch(_ invocation: HubMessage.Invocation, _ session: Session) async {
        let handlers = state.withLockedValue { $0.handlers[invocation.target.lowercased()] ?? [] }
        guard let id = invocation.invocationId else {
            for handler in handlers { _ = try? await handler.call(invocation.arguments) }
            return
        }
        let result: HubMessage.Completion.Result
        if let handler = handlers.first(where: \.returnsResult) {
            do {
                result = try await handler.call(invocation.arguments).map { .value($0) } ?? .void
            } catch {
                result = .error("\(error)")
            }
        } else {
            for handler in handlers { _ = try? await handler.call(invocation.arguments) }
            result = .error("Client didn't provide a result.")
        }
        try? await write(.completion(.init(invocationId: id, result: result)), session)
    }

    /// Sends a Ping every keep-alive interval and closes the WebSocket when the server has been silent for the
    /// server timeout; closes it too when cancelled (the connection is stopping).
    func keepAlive(_ session: Session) async {
        var nextPing = ContinuousClock.now + configuration.keepAliveInterval
        while true {
            let silentUntil = session.lastReceived.withLockedValue { $0 } + configuration.serverTimeout
            do {
                try await Task.sleep(until: min(nextPing, silentUntil), clock: .continuous)
            } catch {
                await session.webSocket.close()
                return
            }
            let now = ContinuousClock.now
            if now >= session.lastReceived.withLockedValue({ $0 }) + configuration.serverTimeout {
                session.timedOut.withLockedValue { $0 = true }
                await session.webSocket.close(code: .normalClosure, reason: "server timeout")
                return
            }
            if now >= nextPing {
                try? await write(.ping, session)
                nextPing = now + configuration.keepAliveInterval
            }
        }
    }
}

/// Runs a ``HubClientConnection`` to `url` during `body` (see ``HubClientConnection/withRunning(_:)``); register
/// handlers in `setUp`, which runs before connecting.
public func withHubConnection<Result: Sendable>(
    url: String,
    configuration: HubClientConfiguration = .init(),
    setUp: (HubClientConnection) -> Void = { _ in },
    _ body: (HubClientConnection) async throws -> Result
) async throws -> Result {
    let connection = HubClientConnection(url: url, configuration: configuration)
    setUp(connection)
    return try await connection.withRunning(body)
}
