import HubProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import WebSocketServer

/// One client's hub connection over a WebSocket, Server-Sent Events or long polling (ASP.NET Core's
/// `HubConnectionHandler` loop for one connection); ``HubConnectionTransport`` is what differs.
///
/// ``run()`` owns three kinds of child tasks in one task group: the writer (drains the ``HubOutbox`` into the
/// transport), the monitor (handshake timeout, keep-alive Ping, client timeout, abort and overflow), and one task
/// per streaming invocation or invocation with upload streams. The read loop runs in `run()` itself: it parses the
/// handshake, then decodes each frame and dispatches its messages in order. A plain Invocation is awaited before
/// the next message is read (ASP.NET Core's default of one invocation at a time per client).
///
/// Stateful reconnect (HubProtocol.md "Stateful Reconnect", WebSockets only): when negotiated and the handshake
/// version is 2, the writer numbers every trackable message it writes and keeps it in a
/// ``StatefulReconnectBuffer`` until the client's `Ack` (waiting while the buffer holds more than
/// ``HubConfiguration/statefulReconnectBufferSize``), the monitor sends an `Ack` each second for what was received,
/// and the read loop drops the client's duplicates. A new WebSocket with the same `id` (``takeOver(_:)``) is
/// adopted as soon as it arrives, each time the client comes back, even while an inline invocation runs: the
/// writer sends a `Sequence` and replays what was not acknowledged on it, and the read loop reads it once done
/// with the old one. When the WebSocket ends without a close frame and no new one is there yet, the read loop
/// waits up to ``HubConfiguration/statefulReconnectDisconnectTimeout`` for it. The connection goes on (same id,
/// groups, items, streams; `onDisconnected` has not run).
final class HubConnection<H: Hub>: HubOutboundConnection, Sendable {
    let endpoint: HubEndpoint<H>
    /// The transport in use (a stateful reconnect replaces the WebSocket).
    var transport: HubConnectionTransport { state.withLockedValue { $0.transport } }
    /// The `id` of a connection negotiated with stateful reconnect on a WebSocket; nil otherwise.
    let statefulToken: String?
    let connectionId: String
    let user: HubUser?
    var userId: String? { user?.id }
    let outbox: HubOutbox
    private let monitorSignal: HubSignal
    /// Woken when an `Ack` frees replay-buffer space, a resume is requested, or the connection ends.
    private let replaySpace = HubSignal()
    private let state: NIOLockedValueBox<State>
    private let logger: Logger

    private enum TakeOverStep {
        case refuse
        /// Adopted: the old WebSocket is closed, and the read loop, if it waits, is handed the new one.
        case adopted(old: WebSocket?, waiter: CheckedContinuation<WebSocket?, Never>?)
    }

    private enum Handoff {
        case none
        /// The read loop waits for a new WebSocket.
        case waiting(CheckedContinuation<WebSocket?, Never>)
        /// A new WebSocket was adopted (the writer resumes on it) while the read loop was still on the old one
        /// (busy in an inline invocation, or it had not seen the drop yet): the read loop reads it next.
        case adopted(WebSocket)
    }

    private struct State {
        var transport: HubConnectionTransport
        /// Stateful reconnect's numbering and replay buffer, once enabled by the handshake.
        var replay: StatefulReconnectBuffer<HubOutbox.Item>?
        /// The WebSocket dropped and the connection waits for the client to come back.
        var disconnected = false
        /// The disconnect timeout passed: the connection ends, a late WebSocket is refused.
        var resumeExpired = false
        var handoff = Handoff.none
        var format: HubWireFormat?
        var context: HubConnectionContext?
        var lastReceive = ContinuousClock.now
        /// An invocation runs inline: the read loop is not reading, so the client's silence is not judged.
        var readingPaused = false
        /// Why the monitor must close the connection (abort, overflow, timeout).
        var closeRequest: CloseRequest?
        var closing = false
        var streams: [String: HubSignal] = [:]
        var uploads: [String: HubUploadChannel] = [:]
        /// Client results being waited for, by the invocation id the server chose.
        var results: [String: CheckedContinuation<HubValue, any Error>] = [:]
        var nextResultId = 0
        var ended = false
        /// The backplane took the connection's subscription in the handshake.
        var subscribed = false
    }

    private struct CloseRequest {
        var error: String?
        var sendCloseMessage: Bool
        var allowReconnect = false
    }

    init(
        endpoint: HubEndpoint<H>, transport: HubConnectionTransport, connectionId: String, user: HubUser?,
        statefulToken: String? = nil
    ) {
        self.endpoint = endpoint
        self.statefulToken = statefulToken
        self.connectionId = connectionId
        self.user = user
        var logger = endpoint.configuration.logger
        logger[metadataKey: "connection"] = "\(connectionId)"
        self.logger = logger
        let signal = HubSignal()
        let requests = NIOLockedValueBox(State(transport: transport))
        self.monitorSignal = signal
        self.state = requests
        let limit = endpoint.configuration.maximumBufferedBytes
        self.outbox = HubOutbox(limit: limit) {
            requests.withLockedValue { state in
                guard state.closeRequest == nil else { return }
                // A stateful connection waiting for its client: the replay buffer is full and the outbox too; the
                // connection ends now rather than at the disconnect timeout (HubConfiguration.maximumBufferedBytes).
                let error =
                    state.disconnected
                    ? "outbound buffer full while the client was disconnected (more than \(limit) bytes waited "
                        + "for its stateful reconnect)"
                    : "outbound buffer full"
                state.closeRequest = CloseRequest(error: error, sendCloseMessage: false)
            }
            signal.wake()
        }
    }

    var format: HubWireFormat { state.withLockedValue { $0.format } ?? .json }

    private var configuration: HubConfiguration { endpoint.configuration }

    func enqueue(_ message: HubFramedMessage) {
        // The lifetime manager sends Invocations only: trackable.
        outbox.enqueue(format == .json ? .text : .binary, message.bytes, tracked: true, shared: message.frame)
    }

    /// Asks the monitor to close the connection with an error Close message.
    func abort(_ reason: String) {
        requestClose(error: reason, allowReconnect: false)
    }

    /// Asks the monitor to send a Close message and close the connection.
    func requestClose(error: String?, allowReconnect: Bool) {
        state.withLockedValue { state in
            if state.closeRequest == nil {
                state.closeRequest = CloseRequest(error: error, sendCloseMessage: true, allowReconnect: allowReconnect)
            }
        }
        monitorSignal.wake()
    }

    // MARK: Lifetime

    func run() async {
        var disconnectError: (any Error)?
        var registered = false
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeLoop() }
            group.addTask { await self.monitorLoop() }
            let end = await readLoop(group: &group, registered: &registered)
            switch end {
            case .peerClosed(let status):
                if status.code != .normalClosure, status.code != .goingAway {
                    disconnectError = HubConnectionError("WebSocket closed with status code \(status.code.rawValue)")
                }
                if let request = state.withLockedValue({ $0.closeRequest }), let error = request.error {
                    disconnectError = HubConnectionError(error)
                }
            case .transportEnded(let error):
                if let error { disconnectError = HubConnectionError(error) }
                if let request = state.withLockedValue({ $0.closeRequest }), let error = request.error {
                    disconnectError = HubConnectionError(error)
                }
            case .closeMessage:
                await close(error: nil, sendCloseMessage: false)
            case .error(let reason):
                disconnectError = HubConnectionError(reason)
                await close(error: reason, sendCloseMessage: true)
            case .handshakeFailed:
                await close(error: nil, sendCloseMessage: false)
            }
            outbox.finish()
            closeStreams()
            replaySpace.wake()
            group.cancelAll()
        }
        if case .adopted(let orphan) = state.withLockedValue({ state -> Handoff in
            defer { state.handoff = .none }
            return state.handoff
        }) {
            orphan.channel.close(promise: nil)
        }
        // The connection is over: a resume from now on is answered 404 (before `onDisconnected` runs).
        if let statefulToken {
            endpoint.registry.withLockedValue { registry in
                guard registry.stateful[statefulToken] === self else { return }
                registry.stateful[statefulToken] = nil
                registry.active.remove(statefulToken)
            }
        }
        guard registered else { return }
        if let context = state.withLockedValue({ $0.context }) {
            let hub = H(context: makeContext(context))
            await hub.onDisconnected(error: disconnectError)
        }
        endpoint.manager.remove(self)
    }

    /// Sends the Close message (optionally), lets the writer flush it (at most 2 s), then closes the WebSocket.
    /// Runs once; later calls return at once.
    private func close(error: String?, sendCloseMessage: Bool, allowReconnect: Bool = false) async {
        let first = state.withLockedValue { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        if case .waiting(let waiter) = state.withLockedValue({ state -> Handoff in
            guard case .waiting = state.handoff else { return .none }
            defer { state.handoff = .none }
            return state.handoff
        }) {
            waiter.resume(returning: nil)
        }
        if outbox.overflowed {
            transport.abort()
            return
        }
        if sendCloseMessage, let format = state.withLockedValue({ $0.format }) {
            let close = HubMessage.close(.init(error: error, allowReconnect: allowReconnect))
            if let bytes = try? format.encode(close) {
                outbox.enqueue(format == .json ? .text : .binary, ByteBuffer(bytes: bytes), bypassLimit: true)
            }
        }
        outbox.finish()
        await outbox.drained.wait(for: .seconds(2))
        await transport.close()
    }

    private func writeLoop() async {
        var target = transport
        // The WebSocket failed under stateful reconnect: messages are only kept for the replay until a resume.
        var broken = false
        writing: while let next = await outbox.next() {
            switch next {
            case .resume:
                target = transport
                broken = !(await replay(on: target))
            case .messages(let items):
                let stateful = state.withLockedValue { $0.replay != nil }
                guard stateful else {
                    // A burst goes in one write; a failed transport ends the writer.
                    do {
                        try await target.send(batch: items)
                    } catch {
                        break writing
                    }
                    outbox.written(items.reduce(0) { $0 + $1.bytes.readableBytes })
                    continue writing
                }
                // Stateful reconnect: each message enters the replay buffer (waiting for space, that is for the
                // client's Acks of what was sent before it) just before it is sent.
                for item in items {
                    if item.tracked {
                        await waitForReplaySpace()
                        state.withLockedValue { _ = $0.replay?.append(item, bytes: item.bytes.readableBytes) }
                    }
                    if !broken {
                        do {
                            try await target.send(item.kind, item.bytes)
                        } catch {
                            broken = true
                        }
                    }
                    outbox.written(item.bytes.readableBytes)
                }
            }
        }
        outbox.writerStopped()
    }

    /// Stateful reconnect: the `Sequence` (the oldest unacknowledged id), then every unacknowledged message, on the
    /// new WebSocket. False when it failed (the next resume tries again).
    private func replay(on target: HubConnectionTransport) async -> Bool {
        guard let (sequenceId, items) = state.withLockedValue({ state -> (Int64, [HubOutbox.Item])? in
            guard let replay = state.replay else { return nil }
            return (replay.resendSequenceId, replay.unacknowledged)
        }) else { return true }
        let format = self.format
        do {
            let sequence = try format.encode(.sequence(sequenceId: sequenceId))
            let kind: MessageKind = format == .json ? .text : .binary
            // The Sequence and the replay leave in bursts (one event-loop hop and one flush each), not one
            // awaited write per message: the buffer holds up to `statefulReconnectBufferSize` bytes.
            let all = [HubOutbox.Item(kind: kind, bytes: ByteBuffer(bytes: sequence), tracked: false)] + items
            for start in stride(from: 0, to: all.count, by: HubOutbox.maxBatchCount) {
                try await target.send(batch: Array(all[start..<min(all.count, start + HubOutbox.maxBatchCount)]))
            }
            return true
        } catch {
            logger.debug("stateful reconnect replay failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Waits while the replay buffer holds more than its limit (ASP.NET Core's backpressure: the sender waits for
    /// an `Ack`); returns at once when a resume is pending or the connection ends.
    private func waitForReplaySpace() async {
        let limit = configuration.statefulReconnectBufferSize
        while !Task.isCancelled {
            let ready = state.withLockedValue { state in
                state.ended || (state.replay?.bufferedBytes ?? 0) <= limit
            }
            if ready || outbox.resumePending { return }
            await replaySpace.wait(for: .seconds(1))
        }
    }

    /// A new WebSocket with this connection's `id` (stateful reconnect): it replaces the current one, which is
    /// closed. False when the connection is not stateful, is ending, or waited longer than the disconnect timeout;
    /// the caller then closes `webSocket`.
    ///
    /// The new WebSocket is adopted at once, whatever the read loop does: the writer sends the `Sequence` and the
    /// replay on it next, so the client gets what the connection sends even while an inline invocation still
    /// runs (the read loop is blocked in it, and would see the old WebSocket end only afterwards). The read loop
    /// reads what was left on the old WebSocket, then the new one (``awaitReconnect(after:)``), so the client's
    /// messages are still processed in order and one invocation at a time; those the client repeats after its
    /// `Sequence` are dropped as duplicates.
    func takeOver(_ webSocket: WebSocket) -> Bool {
        let step = state.withLockedValue { state -> TakeOverStep in
            guard state.replay != nil, !state.ended, !state.closing, state.closeRequest == nil, !state.resumeExpired
            else { return .refuse }
            var old: WebSocket?
            if case .webSocket(let current) = state.transport { old = current }
            state.transport = .webSocket(webSocket)
            state.disconnected = false
            state.lastReceive = .now
            state.replay?.transportReplaced()
            switch state.handoff {
            case .waiting(let waiter):
                state.handoff = .none
                return .adopted(old: old, waiter: waiter)
            case .adopted, .none:
                // The read loop is still on an older WebSocket (one adopted before this one was never read: it
                // is `old`, closed here).
                state.handoff = .adopted(webSocket)
                return .adopted(old: old, waiter: nil)
            }
        }
        guard case .adopted(let old, let waiter) = step else { return false }
        if let old, old !== webSocket { old.channel.close(promise: nil) }
        outbox.requestResume()
        replaySpace.wake()
        monitorSignal.wake()
        waiter?.resume(returning: webSocket)
        logger.debug("stateful reconnect")
        return true
    }

    /// After the WebSocket the read loop read ended: the WebSocket ``takeOver(_:)`` adopted meanwhile, or, for a
    /// stateful connection whose WebSocket dropped without a close frame, the next one, waited for at most
    /// ``HubConfiguration/statefulReconnectDisconnectTimeout``. Nil when the connection ends instead.
    private func awaitReconnect(after status: CloseStatus) async -> WebSocket? {
        let waits = state.withLockedValue { state -> Bool in
            guard state.replay != nil, !state.closing, state.closeRequest == nil else { return false }
            if case .adopted = state.handoff { return true }
            guard status.code == .abnormalClosure else { return false }
            state.disconnected = true
            return true
        }
        guard waits else { return nil }
        logger.debug("WebSocket dropped; waiting for a stateful reconnect")
        let timeout = configuration.statefulReconnectDisconnectTimeout
        let next = await withTaskGroup(of: WebSocket?.self) { group -> WebSocket? in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLockedValue { state -> WebSocket?? in
                        if case .adopted(let webSocket) = state.handoff {
                            state.handoff = .none
                            return .some(webSocket)
                        }
                        if state.closing || state.ended { return .some(nil) }
                        state.handoff = .waiting(continuation)
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Time is up: release the waiter (unless a WebSocket just got to it); later ones are refused.
                if case .waiting(let waiter) = self.state.withLockedValue({ state -> Handoff in
                    guard case .waiting = state.handoff else { return .none }
                    state.resumeExpired = true
                    defer { state.handoff = .none }
                    return state.handoff
                }) {
                    waiter.resume(returning: nil)
                }
                return nil
            }
            // Both children end: the sleeper when cancelled, the waiter when resumed (by a hand-off, the sleeper or
            // close()).
            var arrived: WebSocket?
            while let result = await group.next() {
                if let result { arrived = result }
                group.cancelAll()
            }
            return arrived
        }
        if next == nil { logger.debug("no stateful reconnect in time") }
        return next
    }

    /// Handshake timeout, keep-alive Ping, client timeout, and close requests (abort, overflow).
    private func monitorLoop() async {
        let start = ContinuousClock.now
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (format, lastReceive, request, closing) = state.withLockedValue { state in
                // While the read loop waits for an inline invocation, the clock of the client's silence stands still
                // (our pause is not the client's silence).
                // A stateful connection waiting for its client to reconnect is not silent either.
                if state.readingPaused || state.disconnected { state.lastReceive = now }
                return (state.format, state.lastReceive, state.closeRequest, state.closing)
            }
            // The read loop is closing the connection: nothing is sent any more, nothing to watch.
            if closing, request == nil { return }
            // A long-polling client without a poll for the disconnect timeout is gone (TransportProtocols.md).
            if case .longPolling(let session) = transport,
                session.isInactive(now: now, timeout: configuration.longPollingDisconnectTimeout)
            {
                logger.debug("long polling client stopped polling")
                session.end(error: "The long polling client stopped polling.")
                return
            }
            // Long polling looks for a missing poll every second.
            let recheck = transport.isLongPolling ? now + .seconds(1) : now + .seconds(3600)
            if let request {
                await close(
                    error: request.error, sendCloseMessage: request.sendCloseMessage,
                    allowReconnect: request.allowReconnect)
                return
            }
            guard let format else {
                let deadline = start + configuration.handshakeTimeout
                if now >= deadline {
                    logger.debug("hub handshake timed out")
                    await close(error: nil, sendCloseMessage: false)
                    return
                }
                await monitorSignal.wait(for: min(deadline, recheck) - now)
                continue
            }
            if now - lastReceive >= configuration.clientTimeoutInterval {
                abort("Server timeout elapsed without receiving a message from the client.")
                continue
            }
            // Long polling has inherent keep-alive (each poll); the other transports get a Ping.
            if !transport.isLongPolling, now - outbox.lastEnqueue >= configuration.keepAliveInterval {
                if let ping = try? format.encode(.ping) {
                    outbox.enqueue(format == .json ? .text : .binary, ByteBuffer(bytes: ping))
                }
            }
            // Stateful reconnect: an Ack for what was received, each second (ASP.NET Core's `AckRate`).
            var nextAck = recheck
            if let ack = state.withLockedValue({ state -> Int64?? in
                guard state.replay != nil else { return nil }
                nextAck = now + .seconds(1)
                return state.disconnected ? .some(nil) : .some(state.replay?.takeAck())
            }), let ack, let bytes = try? format.encode(.ack(sequenceId: ack)) {
                outbox.enqueue(format == .json ? .text : .binary, ByteBuffer(bytes: bytes))
            }
            let nextPing = outbox.lastEnqueue + configuration.keepAliveInterval
            let timeout = lastReceive + configuration.clientTimeoutInterval
            let wake = min(nextPing, timeout, recheck, nextAck)
            await monitorSignal.wait(for: max(wake - ContinuousClock.now, .milliseconds(10)))
        }
    }

    private func closeStreams() {
        let (streams, uploads, results) = state.withLockedValue { state in
            defer {
                state.streams = [:]
                state.uploads = [:]
                state.results = [:]
                state.ended = true
            }
            return (Array(state.streams.values), Array(state.uploads.values), Array(state.results.values))
        }
        for stream in streams { stream.wake() }
        for upload in uploads { upload.close() }
        for result in results { result.resume(throwing: HubError("The connection ended before the client answered.")) }
    }

    // MARK: Client results

    func invokeClient(_ target: String, _ arguments: [HubValue], timeout: Duration) async throws -> HubValue {
        if HubInvocationScope.inlineConnection == connectionId {
            throw HubError(
                "A hub method cannot wait for a result from its own caller: the caller's invocations run one at a "
                    + "time.")
        }
        let id = state.withLockedValue { state -> String in
            state.nextResultId += 1
            return "r\(state.nextResultId)"
        }
        return try await withThrowingTaskGroup(of: HubValue.self) { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        let registered = self.state.withLockedValue { state -> Bool in
                            // Checked under the lock: a cancellation before this point is seen here, one after
                            // it finds the waiter in `results`.
                            guard !state.ended, !Task.isCancelled else { return false }
                            state.results[id] = continuation
                            return true
                        }
                        guard registered else {
                            continuation.resume(throwing: HubError("The connection ended before the client answered."))
                            return
                        }
                        self.sendToCaller(
                            .invocation(.init(invocationId: id, target: target, arguments: arguments)))
                    }
                } onCancel: {
                    self.state.withLockedValue { $0.results.removeValue(forKey: id) }?.resume(
                        throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw HubError("The client did not answer '\(target)' within \(timeout).")
            }
            defer { group.cancelAll() }
            guard let value = try await group.next() else { throw CancellationError() }
            return value
        }
    }

    /// Routes a Completion to the client result waiting for it; false when none is.
    private func completeResult(_ completion: HubMessage.Completion) -> Bool {
        guard let waiter = state.withLockedValue({ $0.results.removeValue(forKey: completion.invocationId) }) else {
            return false
        }
        switch completion.result {
        case .value(let value): waiter.resume(returning: value)
        case .void: waiter.resume(returning: .json(.null))
        case .error(let error): waiter.resume(throwing: HubError(error))
        }
        return true
    }

    // MARK: Reading

    private enum End {
        case peerClosed(CloseStatus)
        /// An HTTP transport ended (SSE response gone, DELETE, disconnect timeout, server close); the error
        /// when it is not a normal end.
        case transportEnded(String?)
        case closeMessage
        case error(String)
        case handshakeFailed
    }

    private func readLoop(group: inout TaskGroup<Void>, registered: inout Bool) async -> End {
        var handshakeBuffer: [UInt8] = []
        switch transport {
        case .webSocket(var webSocket):
            while true {
                for await message in webSocket.messages {
                    let end = await receive(
                        message.payload.readableBytesView, handshakeBuffer: &handshakeBuffer, group: &group,
                        registered: &registered)
                    if let end { return end }
                }
                let status = await webSocket.closeStatus
                guard let next = await awaitReconnect(after: status) else { return .peerClosed(status) }
                webSocket = next
            }
        case .serverSentEvents(let session, _), .longPolling(let session):
            // Each POST body is one or more whole messages (a message split across POSTs is refused, as a
            // message split across WebSocket frames).
            for await body in session.inbound {
                session.consumed(body.count)
                let end = await receive(body, handshakeBuffer: &handshakeBuffer, group: &group, registered: &registered)
                if let end { return end }
            }
            // Cancelled (the SSE response or the endpoint ended) or ended: end it for the writer too.
            session.end(error: nil)
            return .transportEnded(session.endError)
        }
    }

    /// One WebSocket message or POST body: the handshake, then hub messages. Returns how the connection ends, or
    /// nil to keep reading.
    private func receive(
        _ bytes: some Collection<UInt8>, handshakeBuffer: inout [UInt8], group: inout TaskGroup<Void>,
        registered: inout Bool
    ) async -> End? {
        state.withLockedValue { $0.lastReceive = .now }
        guard let format = state.withLockedValue({ $0.format }) else {
            handshakeBuffer.append(contentsOf: bytes)
            switch await handshake(handshakeBuffer) {
            case .waiting:
                return nil
            case .failed:
                return .handshakeFailed
            case .done(let format, let remainder):
                registered = true
                endpoint.manager.add(self, subscribed: state.withLockedValue { $0.subscribed })
                if let context = state.withLockedValue({ $0.context }) {
                    do {
                        try await H(context: makeContext(context)).onConnected()
                    } catch {
                        return .error("Connection closed with an error. \(Self.describe(error))")
                    }
                }
                let rest = Array(handshakeBuffer[remainder...])
                handshakeBuffer = []
                if !rest.isEmpty, let end = await process(frame: rest, format: format, group: &group) {
                    return end
                }
                return nil
            }
        }
        return await process(frame: bytes, format: format, group: &group)
    }

    private enum HandshakeOutcome {
        case waiting
        case failed
        case done(HubWireFormat, remainder: Int)
    }

    private func handshake(_ bytes: [UInt8]) async -> HandshakeOutcome {
        let request: HandshakeRequest
        let remainder: Int
        do {
            guard let parsed = try HandshakeRequest.parse(bytes, limits: configuration.limits) else { return .waiting }
            (request, remainder) = parsed
            // Server-Sent Events carry text only (TransportProtocols.md): JSON, not MessagePack.
            var protocols = configuration.protocols
            if case .serverSentEvents = transport { protocols = protocols.filter { $0 == JSONHubProtocol.name } }
            try request.validate(protocols: protocols)
        } catch {
            logger.debug("hub handshake refused", metadata: ["error": "\(error)"])
            let text: String
            switch error.code {
            case .unsupportedProtocol, .unsupportedVersion: text = error.detail
            default: text = "Handshake was canceled. \(error.detail)"
            }
            outbox.enqueue(.text, ByteBuffer(bytes: HandshakeResponse.error(text).encoded()))
            return .failed
        }
        guard let format = HubWireFormat(protocolName: request.protocolName) else { return .failed }
        let context = HubConnectionContext(
            connectionId: connectionId, user: user, protocolName: format.name,
            abort: { [weak self] in self?.abort("Connection aborted by the server.") })
        // Ack and Sequence only with stateful reconnect negotiated and a version 2 handshake (HubProtocol.md).
        let stateful = statefulToken != nil && request.version >= 2
        state.withLockedValue { state in
            state.format = format
            state.context = context
            if stateful { state.replay = StatefulReconnectBuffer() }
        }
        if stateful, let token = statefulToken {
            endpoint.registry.withLockedValue { $0.stateful[token] = self }
        }
        // With a backplane: subscribed to the connection's (and its user's) messages from other servers before the
        // client learns it is connected (bounded by HubConfiguration.backplaneInterestTimeout).
        let subscribed = await endpoint.manager.subscribe(connectionId: connectionId, userId: user?.id)
        state.withLockedValue { $0.subscribed = subscribed }
        outbox.enqueue(format == .json ? .text : .binary, ByteBuffer(bytes: HandshakeResponse.success.encoded()))
        monitorSignal.wake()
        return .done(format, remainder: remainder)
    }

    /// Decodes a frame and dispatches its messages; returns how the connection ends, or nil to keep reading.
    private func process(frame: some Collection<UInt8>, format: HubWireFormat, group: inout TaskGroup<Void>) async
        -> End?
    {
        var messages: [HubMessage] = []
        var failure: HubProtocolError?
        do {
            try format.decode(frame: frame, limits: configuration.limits, into: &messages)
        } catch {
            failure = error
        }
        for message in messages {
            let disposition: StatefulReconnectBuffer<HubOutbox.Item>.Disposition
            do {
                disposition = try state.withLockedValue { state in
                    try state.replay?.receive(message) ?? .process
                }
            } catch {
                logger.debug("stateful reconnect protocol error", metadata: ["error": "\(error)"])
                return .error("Connection closed with an error. InvalidOperationException: \(error)")
            }
            switch disposition {
            case .process:
                if let end = await dispatch(message, group: &group) { return end }
            case .acknowledged:
                replaySpace.wake()
            case .duplicate, .sequenced:
                break
            }
        }
        if let failure {
            logger.debug("hub protocol error", metadata: ["error": "\(failure)"])
            return .error("Connection closed with an error. InvalidDataException: \(failure)")
        }
        return nil
    }

    private func dispatch(_ message: HubMessage, group: inout TaskGroup<Void>) async -> End? {
        switch message {
        case .invocation(let invocation):
            await invoke(
                target: invocation.target, invocationId: invocation.invocationId, arguments: invocation.arguments,
                streamIds: invocation.streamIds, streaming: false, group: &group)
        case .streamInvocation(let invocation):
            await invoke(
                target: invocation.target, invocationId: invocation.invocationId, arguments: invocation.arguments,
                streamIds: invocation.streamIds, streaming: true, group: &group)
        case .streamItem(let item):
            if let upload = state.withLockedValue({ $0.uploads[item.invocationId] }) {
                await upload.send(item.item)
            } else {
                // ASP.NET Core logs and ignores an item for a stream it does not know (or no longer reads).
                logger.debug("StreamItem for an unknown stream", metadata: ["id": "\(item.invocationId)"])
            }
        case .completion(let completion):
            if let upload = state.withLockedValue({ $0.uploads.removeValue(forKey: completion.invocationId) }) {
                if case .error(let error) = completion.result {
                    upload.finish(error: HubError(error))
                } else {
                    upload.finish(error: nil)
                }
            } else if !completeResult(completion) {
                logger.debug("Completion for an unknown invocation", metadata: ["id": "\(completion.invocationId)"])
            }
        case .cancelInvocation(let cancel):
            state.withLockedValue { $0.streams[cancel.invocationId] }?.wake()
        case .ping, .ack, .sequence:
            break
        case .close:
            return .closeMessage
        }
        return nil
    }

    // MARK: Invocations

    private func makeContext(_ connection: HubConnectionContext) -> HubContext {
        HubContext(
            connection: connection,
            clients: HubClients(manager: endpoint.manager, callerId: connectionId),
            groups: HubGroups(manager: endpoint.manager))
    }

    /// Sends a message to this connection only.
    private func sendToCaller(_ message: HubMessage) {
        let format = self.format
        do {
            outbox.enqueue(
                format == .json ? .text : .binary, ByteBuffer(bytes: try format.encode(message)),
                tracked: message.isTrackable)
        } catch {
            logger.info("hub message could not be encoded", metadata: ["error": "\(error)"])
            if case .completion(let completion) = message {
                let failed = HubMessage.completion(
                    .init(invocationId: completion.invocationId, result: .error("The result could not be serialized.")))
                if let bytes = try? format.encode(failed) {
                    outbox.enqueue(format == .json ? .text : .binary, ByteBuffer(bytes: bytes), tracked: true)
                }
            }
        }
    }

    private func fail(_ invocationId: String?, _ error: String) {
        guard let invocationId else { return }
        sendToCaller(.completion(.init(invocationId: invocationId, result: .error(error))))
    }

    private func invoke(
        target: String, invocationId: String?, arguments: [HubValue], streamIds: [String], streaming: Bool,
        group: inout TaskGroup<Void>
    ) async {
        guard let method = endpoint.methods[target] else {
            fail(invocationId, "Unknown hub method '\(target)'")
            return
        }
        if let rule = endpoint.authorizations[target], !rule.allows(user) {
            fail(invocationId, "Failed to invoke '\(target)' because user is unauthorized")
            return
        }
        switch (streaming, method.kind) {
        case (true, .single):
            fail(
                invocationId,
                "The client attempted to invoke the non-streaming '\(target)' method with a streaming invocation.")
            return
        case (false, .stream):
            fail(
                invocationId,
                "The client attempted to invoke the streaming '\(target)' method with a non-streaming invocation.")
            return
        default:
            break
        }
        let failedToInvoke = "Failed to invoke '\(target)' due to an error on the server."
        guard arguments.count == method.shape.argumentCount else {
            fail(
                invocationId,
                "\(failedToInvoke) InvalidDataException: Invocation provides \(arguments.count) argument(s) but "
                    + "target expects \(method.shape.argumentCount).")
            return
        }
        guard streamIds.count == method.shape.streamCount else {
            fail(
                invocationId,
                "\(failedToInvoke) HubException: Client sent \(streamIds.count) stream(s), Hub method expects "
                    + "\(method.shape.streamCount).")
            return
        }
        guard let connectionContext = state.withLockedValue({ $0.context }) else { return }
        let capacity = configuration.streamBufferCapacity
        let limit = configuration.maximumStreamsPerConnection
        let streamSignal = HubSignal()
        let uploads = state.withLockedValue { state -> [HubUploadChannel]? in
            let added = streamIds.count + (streaming ? 1 : 0)
            guard state.streams.count + state.uploads.count + added <= limit else { return nil }
            if streaming, let invocationId {
                guard state.streams[invocationId] == nil else { return nil }
                state.streams[invocationId] = streamSignal
            }
            var channels: [HubUploadChannel] = []
            for id in streamIds where state.uploads[id] == nil {
                let channel = HubUploadChannel(capacity: capacity)
                state.uploads[id] = channel
                channels.append(channel)
            }
            return channels
        }
        guard let uploads, uploads.count == streamIds.count else {
            fail(invocationId, "\(failedToInvoke) HubException: Too many streams, or a stream id already in use.")
            return
        }
        let context = makeContext(connectionContext)
        let cursor = ArgumentCursor(arguments: arguments, streams: uploads)
        if streaming, let invocationId {
            group.addTask {
                await self.runStream(method, context, cursor, invocationId: invocationId, cancel: streamSignal)
                self.endUploads(streamIds)
                _ = self.state.withLockedValue { $0.streams.removeValue(forKey: invocationId) }
            }
        } else if !streamIds.isEmpty {
            group.addTask {
                await self.runSingle(method, context, cursor, invocationId: invocationId)
                self.endUploads(streamIds)
            }
        } else {
            state.withLockedValue { $0.readingPaused = true }
            await HubInvocationScope.$inlineConnection.withValue(connectionId) {
                await runSingle(method, context, cursor, invocationId: invocationId)
            }
            state.withLockedValue { state in
                state.readingPaused = false
                state.lastReceive = .now
            }
        }
    }

    private func endUploads(_ ids: [String]) {
        let channels = state.withLockedValue { state in ids.compactMap { state.uploads.removeValue(forKey: $0) } }
        for channel in channels { channel.close() }
    }

    private func runSingle(_ method: HubMethod, _ context: HubContext, _ cursor: ArgumentCursor, invocationId: String?)
        async
    {
        do {
            let outcome = try await method.invoke(context, cursor)
            guard let invocationId else { return }
            switch outcome {
            case .void, .stream: sendToCaller(.completion(.init(invocationId: invocationId, result: .void)))
            case .value(let value): sendToCaller(.completion(.init(invocationId: invocationId, result: .value(value))))
            }
        } catch {
            logger.debug("hub method failed", metadata: ["method": "\(method.name)", "error": "\(error)"])
            fail(invocationId, Self.invocationError(method.name, error))
        }
    }

    private enum StreamEnd: Sendable {
        case finished
        case failed(String)
        case cancelled
    }

    private func runStream(
        _ method: HubMethod, _ context: HubContext, _ cursor: ArgumentCursor, invocationId: String, cancel: HubSignal
    ) async {
        let iterate: @Sendable (@Sendable (HubValue) async throws -> Void) async throws -> Void
        do {
            guard case .stream(let body) = try await method.invoke(context, cursor) else { return }
            iterate = body
        } catch {
            fail(invocationId, Self.invocationError(method.name, error))
            return
        }
        let end = await withTaskGroup(of: StreamEnd.self) { inner -> StreamEnd in
            inner.addTask {
                do {
                    try await iterate { value in
                        await self.outbox.waitForSpace()
                        try Task.checkCancellation()
                        self.sendToCaller(.streamItem(.init(invocationId: invocationId, item: value)))
                    }
                    return .finished
                } catch is CancellationError {
                    return .cancelled
                } catch let error as HubError {
                    return .failed("An error occurred on the server while streaming results. \(error)")
                } catch {
                    return .failed("An error occurred on the server while streaming results.")
                }
            }
            inner.addTask {
                await cancel.wait()
                return .cancelled
            }
            let first = await inner.next() ?? .cancelled
            inner.cancelAll()
            return first
        }
        switch end {
        case .finished, .cancelled: sendToCaller(.completion(.init(invocationId: invocationId, result: .void)))
        case .failed(let error): sendToCaller(.completion(.init(invocationId: invocationId, result: .error(error))))
        }
    }

    /// The error text of a failed invocation, in ASP.NET Core's words: binding failures name the cause, a
    /// ``HubError`` gives its message, any other error only the method.
    static func invocationError(_ method: String, _ error: any Error) -> String {
        if error is ArgumentCursor.BindingError {
            return "Failed to invoke '\(method)' due to an error on the server. InvalidDataException: Error binding "
                + "arguments. Make sure that the types of the provided values match the types of the hub method "
                + "being invoked."
        }
        if let error = error as? HubError {
            return "An unexpected error occurred invoking '\(method)' on the server. \(error)"
        }
        return "An unexpected error occurred invoking '\(method)' on the server."
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HubError { return "\(error)" }
        return "\(type(of: error))"
    }
}
