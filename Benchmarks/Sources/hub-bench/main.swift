import BenchSupport
import CEpoll
import WebSocketCore

#if canImport(Glibc)
    import Glibc
#endif

// hub-bench: a single-threaded SignalR hub load generator on raw POSIX sockets and epoll (level-triggered), with
// WebSocketCore's FrameEncoder, Masking and FrameParser for the frames and a hand-written reader for the few hub
// messages it needs (HubWire.swift). Every message is checked: completions come back in order with the right
// result; every connection receives every broadcast exactly once and in order (a gap is counted as lost, a
// duplicate or a reordering stops the run).

/// Counters shared by all connections of one run.
final class Stats {
    var measuring = false
    var sending = true
    /// Completions (echo, payload) or deliveries of `send` (broadcast) while measuring.
    var messages = 0
    /// EchoAll calls sent while measuring (broadcast).
    var sends = 0
    /// Broadcasts a connection never received (gaps in a sender's sequence), over the whole run.
    var lost = 0
    /// Broadcasts of an earlier run (another run tag) still on their way when this run connected: ignored.
    var stale = 0
    /// Latencies in nanoseconds by server index (broadcast: of the receiving connection's server).
    var latencies: [[UInt64]]

    init(servers: Int) {
        latencies = Array(repeating: [], count: servers)
        for i in 0..<servers { latencies[i].reserveCapacity(1 << 20) }
    }
}

/// Shared state of the broadcast senders: what each sent, which witness saw what, and when each was sent.
final class Broadcasts {
    static let ring = 1 << 16
    /// A tag in bits 56-62 of every EchoAll value (then the sequence in bits 8-55, the sender in bits 0-7): a
    /// server may still deliver an earlier run's broadcasts (a backlog behind a backplane) to this run's
    /// connections; they are told apart by it.
    let runTag = Int64.random(in: 1...127)
    let senders: Int
    let witnesses: [Int]
    var sent: [UInt64]
    /// `seen[sender][w]`: how many of the sender's messages witness `w` received.
    var seen: [[UInt64]]
    var sendTimes: [[UInt64]]

    init(senders: Int, witnesses: [Int]) {
        self.senders = senders
        self.witnesses = witnesses
        sent = Array(repeating: 0, count: senders)
        seen = Array(repeating: Array(repeating: 0, count: witnesses.count), count: senders)
        sendTimes = Array(repeating: Array(repeating: 0, count: Broadcasts.ring), count: senders)
    }

    /// Messages of `sender` not yet seen by every witness.
    func outstanding(_ sender: Int) -> UInt64 { sent[sender] - (seen[sender].min() ?? 0) }
}

/// One hub connection.
final class HubPeer {
    let fd: Int32
    let index: Int
    let server: Int
    let options: Options
    let stats: Stats
    let broadcasts: Broadcasts?
    /// This connection's position among the witnesses (broadcast), if it is one.
    let witness: Int?
    private var parser = FrameParser(configuration: .init(role: .client, maxFramePayloadLength: 16 << 20))
    private var partial: [UInt8] = []
    private var partialOpcode = Opcode.continuation
    private var frameIsFinal = true
    private var out: [UInt8] = []
    private var outHead = 0
    private var scratch: [UInt8] = []
    private var keys: UInt64
    var wantsWritable = false
    var dirty = false
    var handshakeDone = false

    // Echo and payload: invocations in order.
    private var sentSequence: UInt64 = 0
    private var completedSequence: UInt64 = 0
    private var sendTimes: [UInt64]
    private let payloadText: [UInt8]
    // Broadcast: the next sequence expected from each sender.
    private var expected: [UInt64]

    init(fd: Int32, index: Int, server: Int, options: Options, stats: Stats, broadcasts: Broadcasts?) {
        self.fd = fd
        self.index = index
        self.server = server
        self.options = options
        self.stats = stats
        self.broadcasts = broadcasts
        witness = broadcasts?.witnesses.firstIndex(of: index)
        keys = 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
        sendTimes = Array(repeating: 0, count: options.inFlight)
        payloadText = (0..<options.size).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        expected = Array(repeating: 0, count: broadcasts?.senders ?? 0)
        out.reserveCapacity(4096)
    }

    var isSender: Bool { broadcasts.map { index < $0.senders } ?? false }

    /// Queues one WebSocket message (masked; text for JSON, binary for MessagePack) holding `scratch`.
    private func queueMessage() {
        keys ^= keys << 13
        keys ^= keys >> 7
        keys ^= keys << 17
        let key = MaskKey(
            UInt8(truncatingIfNeeded: keys), UInt8(truncatingIfNeeded: keys >> 8),
            UInt8(truncatingIfNeeded: keys >> 16), UInt8(truncatingIfNeeded: keys >> 24))
        let opcode: Opcode = options.hubProtocol == .json ? .text : .binary
        var header = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
        let headerLength = header.withUnsafeMutableBytes {
            FrameEncoder.writeHeader(FrameHeader(opcode: opcode, maskKey: key, payloadLength: scratch.count), into: $0)
        }
        scratch.withUnsafeMutableBytes { _ = Masking.apply(key, to: $0) }
        if outHead > 0 && outHead == out.count {
            out.removeAll(keepingCapacity: true)
            outHead = 0
        }
        out.append(contentsOf: header[0..<headerLength])
        out.append(contentsOf: scratch)
        dirty = true
    }

    /// Sends the hub handshake request.
    func queueHandshake() {
        scratch = HubWire.handshake(options.hubProtocol)
        queueMessage()
    }

    func queuePing() {
        scratch = HubWire.ping(options.hubProtocol)
        queueMessage()
    }

    /// Queues the next invocation of this connection's scenario.
    func queueNext(now: UInt64) {
        scratch.removeAll(keepingCapacity: true)
        switch options.scenario {
        case .echo, .payload:
            let id = sentSequence
            sendTimes[Int(id % UInt64(options.inFlight))] = now
            sentSequence += 1
            if options.scenario == .echo {
                HubWire.appendInvocation(
                    options.hubProtocol, id: id, target: "Echo", integer: Int64(id), text: nil, to: &scratch)
            } else {
                HubWire.appendInvocation(
                    options.hubProtocol, id: id, target: "SendPayload", integer: 0, text: payloadText, to: &scratch)
            }
        case .broadcast:
            guard let broadcasts else { return }
            let sequence = broadcasts.sent[index]
            broadcasts.sendTimes[index][Int(sequence % UInt64(Broadcasts.ring))] = now
            broadcasts.sent[index] += 1
            if stats.measuring { stats.sends += 1 }
            HubWire.appendInvocation(
                options.hubProtocol, id: nil, target: "EchoAll", integer: broadcasts.runTag << 56 | Int64(sequence << 8) | Int64(index),
                text: nil, to: &scratch)
        }
        queueMessage()
    }

    /// Fills the in-flight window (echo and payload: this connection; broadcast: this sender).
    func fill(now: UInt64) {
        guard stats.sending else { return }
        switch options.scenario {
        case .echo, .payload:
            while sentSequence - completedSequence < UInt64(options.inFlight) { queueNext(now: now) }
        case .broadcast:
            guard let broadcasts, isSender else { return }
            while broadcasts.outstanding(index) < UInt64(options.inFlight) { queueNext(now: now) }
        }
    }

    /// Writes as much queued output as the socket takes; returns whether the epoll interest must change.
    func flush() -> Bool {
        dirty = false
        while outHead < out.count {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + outHead, $0.count - outHead) }
            if n > 0 {
                outHead += n
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                fail("write on connection \(index): \(errnoText())")
            }
        }
        if outHead == out.count {
            out.removeAll(keepingCapacity: true)
            outHead = 0
        }
        let wants = outHead < out.count
        defer { wantsWritable = wants }
        return wants != wantsWritable
    }

    /// Consumes received bytes: frames, then hub messages. `peers` lets a witness wake its sender.
    func receive(_ buffer: UnsafeMutableRawBufferPointer, now: UInt64, peers: [HubPeer]) {
        var offset = 0
        while offset < buffer.count {
            let start = offset
            let parsed: (consumed: Int, item: FrameParser.Item?)
            do {
                parsed = try parser.parse(UnsafeMutableRawBufferPointer(rebasing: buffer[start...]))
            } catch {
                fail("protocol error from the server on connection \(index): \(error)")
            }
            offset += parsed.consumed
            guard let item = parsed.item, let base = buffer.baseAddress else { break }
            switch item {
            case .frame(let header, let range):
                let payload = UnsafeRawBufferPointer(start: base + start + range.lowerBound, count: range.count)
                frame(header, payload, now: now, peers: peers)
            case .header(let header):
                if header.opcode.isControl { fail("a control frame split across reads (not expected here)") }
                if header.opcode != .continuation { partialOpcode = header.opcode }
                frameIsFinal = header.fin
            case .payload(let range, let isFinal):
                partial.append(contentsOf: UnsafeRawBufferPointer(start: base + start + range.lowerBound, count: range.count))
                if isFinal && frameIsFinal {
                    let message = partial
                    partial.removeAll(keepingCapacity: true)
                    message.withUnsafeBytes { handleMessage($0, now: now, peers: peers) }
                }
            }
        }
    }

    private func frame(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer, now: UInt64, peers: [HubPeer]) {
        switch header.opcode {
        case .text, .binary, .continuation:
            if header.fin && partial.isEmpty {
                handleMessage(payload, now: now, peers: peers)
            } else {
                partial.append(contentsOf: payload)
                if header.fin {
                    let message = partial
                    partial.removeAll(keepingCapacity: true)
                    message.withUnsafeBytes { handleMessage($0, now: now, peers: peers) }
                }
            }
        case .close:
            let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
            let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
            fail("the server closed connection \(index): \(code) \(reason)")
        default:
            break  // ping, pong: the hub layer keeps itself alive with hub pings
        }
    }

    private func handleMessage(_ payload: UnsafeRawBufferPointer, now: UInt64, peers: [HubPeer]) {
        if !handshakeDone {
            // The handshake response is JSON + 0x1E, possibly followed by hub messages in the same frame.
            guard let end = payload.firstIndex(of: HubWire.recordSeparator) else { fail("a bad handshake response") }
            let response = String(decoding: payload[..<end], as: UTF8.self)
            guard response == "{}" else { fail("handshake refused: \(response)") }
            handshakeDone = true
            let rest = UnsafeRawBufferPointer(rebasing: payload[(end + 1)...])
            if !rest.isEmpty { handleMessage(rest, now: now, peers: peers) }
            return
        }
        HubWire.forEachMessage(options.hubProtocol, in: payload) { message in
            switch message {
            case .completion(let id, let result):
                completion(id: id, result: result, now: now)
            case .failure(let id, let error):
                fail("invocation \(id) on connection \(index) failed: \(error)")
            case .send(let value):
                delivery(value, now: now, peers: peers)
            case .close(let error):
                fail("the server closed hub connection \(index) (Close message): \(error)")
            case .ignored:
                break
            }
        }
    }

    private func completion(id: UInt64, result: Int64?, now: UInt64) {
        guard options.scenario != .broadcast else { fail("an unexpected Completion") }
        guard id == completedSequence else {
            fail("completion \(id) on connection \(index) while \(completedSequence) was expected")
        }
        if options.scenario == .echo && result != Int64(id) {
            fail("Echo(\(id)) on connection \(index) returned \(result.map(String.init) ?? "no result")")
        }
        let sentAt = sendTimes[Int(id % UInt64(options.inFlight))]
        completedSequence += 1
        if stats.measuring {
            stats.messages += 1
            stats.latencies[server].append(now &- sentAt)
        }
        fill(now: now)
    }

    private func delivery(_ value: Int64, now: UInt64, peers: [HubPeer]) {
        guard let broadcasts else { fail("an unexpected send") }
        guard value >> 56 == broadcasts.runTag else {
            stats.stale += 1
            return
        }
        let sender = Int(value & 0xFF)
        let sequence = UInt64(value >> 8) & (1 << 48 - 1)
        guard sender < broadcasts.senders, sequence < broadcasts.sent[sender] else {
            fail("connection \(index) received a broadcast nobody sent: \(value)")
        }
        guard sequence >= expected[sender] else {
            fail("connection \(index) received message \(sequence) of sender \(sender) twice or out of order")
        }
        guard broadcasts.sent[sender] - sequence < UInt64(Broadcasts.ring) else {
            fail("connection \(index) lags more than \(Broadcasts.ring) messages behind sender \(sender)")
        }
        stats.lost += Int(sequence - expected[sender])
        expected[sender] = sequence + 1
        if stats.measuring {
            stats.messages += 1
            stats.latencies[server].append(now &- broadcasts.sendTimes[sender][Int(sequence % UInt64(Broadcasts.ring))])
        }
        if let witness {
            broadcasts.seen[sender][witness] = sequence + 1
            peers[sender].fill(now: now)
        }
    }
}

// MARK: - Connections

/// Connects, upgrades to WebSocket and sends the hub handshake; the response is read by the event loop.
func openPeer(index: Int, options: Options, stats: Stats, broadcasts: Broadcasts?) -> (HubPeer, [UInt8]) {
    let serverIndex = index % options.servers.count
    let server = options.servers[serverIndex]
    let fd = Socket.connect(host: server.host, port: server.port)
    let early = webSocketHandshake(fd: fd, host: server.host, port: server.port, path: server.path)
    Socket.setNonBlocking(fd)
    let peer = HubPeer(
        fd: fd, index: index, server: serverIndex, options: options, stats: stats, broadcasts: broadcasts)
    peer.queueHandshake()
    return (peer, early)
}

// MARK: - Run

func run(_ options: Options) {
    let stats = Stats(servers: options.servers.count)
    var broadcasts: Broadcasts?
    if options.scenario == .broadcast {
        broadcasts = Broadcasts(senders: options.senders, witnesses: Array(0..<options.servers.count))
    }
    let epollFD = epoll_create1(0)
    guard epollFD >= 0 else { fail("epoll_create1: \(errnoText())") }
    let readable = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
    let writable = readable | EPOLLOUT.rawValue
    func setInterest(_ peer: HubPeer, operation: Int32) {
        var event = epoll_event()
        event.events = peer.wantsWritable ? writable : readable
        event.data.u64 = UInt64(peer.index)
        guard epoll_ctl(epollFD, operation, peer.fd, &event) == 0 else { fail("epoll_ctl: \(errnoText())") }
    }

    let readCapacity = 1 << 20
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readCapacity, alignment: 64)
    let maxEvents = 256
    let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: maxEvents)
    var peers: [HubPeer] = []

    /// One pass of the event loop: reads, then flushes what became dirty.
    func poll(timeoutMs: Int32) {
        let ready = epoll_wait(epollFD, events, Int32(maxEvents), timeoutMs)
        if ready < 0 {
            if errno == EINTR { return }
            fail("epoll_wait: \(errnoText())")
        }
        let received = monotonicNanoseconds()
        for e in 0..<Int(ready) {
            let peer = peers[Int(events[e].data.u64)]
            let flags = events[e].events
            if flags & EPOLLIN.rawValue != 0 {
                let n = read(peer.fd, readBuffer.baseAddress, readCapacity)
                if n > 0 {
                    peer.receive(UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<n]), now: received, peers: peers)
                } else if n == 0 {
                    fail("the server closed connection \(peer.index)")
                } else if errno != EAGAIN && errno != EINTR {
                    fail("read: \(errnoText())")
                }
            } else if flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0 {
                fail("connection \(peer.index) failed (epoll flags 0x\(String(flags, radix: 16)))")
            }
            peer.dirty = true
        }
        for peer in peers where peer.dirty {
            if peer.flush() { setInterest(peer, operation: EPOLL_CTL_MOD) }
        }
    }

    // Connect everybody and finish every hub handshake before any load.
    for index in 0..<options.connections {
        let (peer, early) = openPeer(index: index, options: options, stats: stats, broadcasts: broadcasts)
        peers.append(peer)
        _ = peer.flush()
        setInterest(peer, operation: EPOLL_CTL_ADD)
        if !early.isEmpty {
            var copy = early
            copy.withUnsafeMutableBytes { peer.receive($0, now: monotonicNanoseconds(), peers: peers) }
        }
        if index % 64 == 63 { poll(timeoutMs: 0) }
    }
    let handshakeDeadline = monotonicNanoseconds() + 30_000_000_000
    while peers.contains(where: { !$0.handshakeDone }) {
        guard monotonicNanoseconds() < handshakeDeadline else { fail("hub handshakes did not complete in 30 s") }
        poll(timeoutMs: 5)
    }

    let start = monotonicNanoseconds()
    for peer in peers { peer.fill(now: start) }
    let warmupEnd = start + UInt64(options.warmup * 1e9)
    let end = warmupEnd + UInt64(options.duration * 1e9)
    var nextPing = start + 5_000_000_000
    var measuredStart: UInt64 = 0
    var serverCPUStart: Double? = nil
    var redisCPUStart: Double? = nil
    var clientCPUStart = 0.0
    func serverCPU() -> Double? {
        guard !options.serverPIDs.isEmpty else { return nil }
        var total = 0.0
        for pid in options.serverPIDs {
            guard let seconds = processCPUSeconds(pid) else { return nil }
            total += seconds
        }
        return total
    }

    while true {
        let now = monotonicNanoseconds()
        if !stats.measuring && now >= warmupEnd {
            stats.measuring = true
            measuredStart = now
            serverCPUStart = serverCPU()
            redisCPUStart = options.redisPID.flatMap(processCPUSeconds)
            clientCPUStart = selfCPUSeconds()
        }
        if now >= end { break }
        if now >= nextPing {
            // Connections that only receive must still be heard from within the server's client timeout.
            for peer in peers where !peer.isSender { peer.queuePing() }
            nextPing = now + 5_000_000_000
        }
        poll(timeoutMs: 5)
    }
    let measuredEnd = monotonicNanoseconds()
    stats.measuring = false
    stats.sending = false
    let serverCPUEnd = serverCPU()
    let redisCPUEnd = options.redisPID.flatMap(processCPUSeconds)
    let clientCPU = selfCPUSeconds() - clientCPUStart
    let elapsed = Double(measuredEnd - measuredStart) / 1e9
    for peer in peers { close(peer.fd) }

    // MARK: Report

    func percentile(_ values: [UInt64], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let index = min(values.count - 1, Int((p / 100 * Double(values.count)).rounded(.down)))
        return Double(values[index]) / 1000
    }
    var all: [UInt64] = []
    for i in stats.latencies.indices {
        stats.latencies[i].sort()
        all.append(contentsOf: stats.latencies[i])
    }
    all.sort()
    let rate = Double(stats.messages) / elapsed
    let serverSeconds = serverCPUStart.flatMap { before in serverCPUEnd.map { $0 - before } }
    let perMessage = serverSeconds.map { stats.messages > 0 ? $0 / Double(stats.messages) * 1e6 : 0 }
    let redisSeconds = redisCPUStart.flatMap { before in redisCPUEnd.map { $0 - before } }
    let unit = options.scenario == .broadcast ? "deliveries" : "completions"
    let singular = options.scenario == .broadcast ? "delivery" : "completion"
    print(
        "hub-bench \(options.scenario.rawValue) \(options.hubProtocol.rawValue) servers=\(options.servers.count) "
            + "connections=\(options.connections) senders=\(options.senders) in-flight=\(options.inFlight) "
            + "measured=\(formatted(elapsed, 2))s")
    print("  \(unit)/s: \(formatted(rate, 0))" + (options.scenario == .broadcast
        ? "   EchoAll calls/s: \(formatted(Double(stats.sends) / elapsed, 0))   lost: \(stats.lost)"
            + (stats.stale > 0 ? "   earlier runs' messages ignored: \(stats.stale)" : "") : ""))
    print("  latency: p50 \(formatted(percentile(all, 50))) us, p99 \(formatted(percentile(all, 99))) us")
    if options.servers.count > 1 {
        for (i, values) in stats.latencies.enumerated() {
            print(
                "    on server \(i): p50 \(formatted(percentile(values, 50))) us, p99 "
                    + "\(formatted(percentile(values, 99))) us (\(values.count) messages)")
        }
    }
    if let serverSeconds, let perMessage {
        print(
            "  server CPU: \(formatted(serverSeconds, 2)) s = \(formatted(perMessage, 2)) us per \(singular) "
                + "(\(formatted(serverSeconds / elapsed * 100, 0))% of one core)")
    }
    if let redisSeconds { print("  redis CPU: \(formatted(redisSeconds / elapsed * 100, 0))% of one core") }
    print("  client CPU: \(formatted(clientCPU / elapsed * 100, 0))% of one core")
    var perServer = ""
    if options.servers.count > 1 {
        for (i, values) in stats.latencies.enumerated() {
            perServer +=
                " p50_us_s\(i)=\(formatted(percentile(values, 50))) p99_us_s\(i)=\(formatted(percentile(values, 99)))"
        }
    }
    print(
        "RESULT label=\(options.label) scenario=\(options.scenario.rawValue) protocol=\(options.hubProtocol.rawValue) "
            + "servers=\(options.servers.count) conns=\(options.connections) senders=\(options.senders) "
            + "inflight=\(options.inFlight) size=\(options.size) seconds=\(formatted(elapsed, 3)) "
            + "msgs_per_s=\(formatted(rate, 0)) sends_per_s=\(formatted(Double(stats.sends) / elapsed, 0)) "
            + "lost=\(stats.lost) stale=\(stats.stale) p50_us=\(formatted(percentile(all, 50))) p99_us=\(formatted(percentile(all, 99)))"
            + perServer
            + " server_cpu_us_per_msg=\(perMessage.map { formatted($0, 3) } ?? "NA") "
            + "server_cpu_pct=\(serverSeconds.map { formatted($0 / elapsed * 100, 0) } ?? "NA") "
            + "redis_cpu_pct=\(redisSeconds.map { formatted($0 / elapsed * 100, 0) } ?? "NA") "
            + "client_cpu_pct=\(formatted(clientCPU / elapsed * 100, 0))")
}

signal(SIGPIPE, SIG_IGN)
run(Options.parse(CommandLine.arguments))
