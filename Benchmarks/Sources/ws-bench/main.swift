import BenchSupport
import CEpoll
import WebSocketCore

#if canImport(Glibc)
    import Glibc
#endif

// ws-bench: a single-threaded load generator on raw POSIX sockets and epoll (level-triggered), with
// WebSocketCore's FrameEncoder, Masking and FrameParser for the protocol. No allocation per message; one shared
// 1 MiB read buffer (every read is consumed completely: the parser keeps partial headers, payload chunks are
// verified as they arrive).

// MARK: - Idle connections: the server's memory per connection

func runIdle(_ options: Options, count idle: Int) {
    guard let pid = options.serverPID, processRSSKiB(pid) != nil else { fail("--idle needs --server-pid") }
    var fds: [Int32] = []
    // Warm-up connections stay open: the first handshakes fault in the server's code pages and fill its runtime
    // caches (about 1.3 MB for ws-echo), a one-time cost that is not memory per connection.
    for _ in 0..<options.idleWarmup { fds.append(openConnection(options).fd) }
    if options.idleWarmup > 0 { usleep(UInt32(options.hold * 1_000_000)) }
    guard let before = processRSSKiB(pid) else { fail("cannot read the server's VmRSS") }
    for _ in 0..<idle { fds.append(openConnection(options).fd) }
    usleep(UInt32(options.hold * 1_000_000))
    let after = processRSSKiB(pid) ?? before
    let perConnection = Double(after - before) * 1024 / Double(idle)
    print(
        "idle: \(idle) connections after \(options.idleWarmup) warm-up ones, server VmRSS \(before) KiB -> "
            + "\(after) KiB, \(formatted(perConnection, 0)) B/conn")
    print(
        "RESULT label=\(options.label) mode=\(modeName(options)) idle=\(idle) idle_warmup=\(options.idleWarmup) "
            + "rss_before_kib=\(before) rss_after_kib=\(after) bytes_per_conn=\(formatted(perConnection, 0))")
    for fd in fds { close(fd) }
}

// MARK: - Load

func runLoad(_ options: Options) {
    let pattern = UnsafeMutableRawBufferPointer.allocate(byteCount: options.size, alignment: 64)
    var seed: UInt64 = 0x1234_5678_9ABC_DEF1
    for i in 0..<options.size {
        seed ^= seed << 13
        seed ^= seed >> 7
        seed ^= seed << 17
        // Text messages: printable ASCII (valid UTF-8); binary: any byte.
        pattern[i] = options.text ? 0x20 + UInt8(truncatingIfNeeded: seed) % 95 : UInt8(truncatingIfNeeded: seed)
    }

    let stats = Stats()
    let epollFD = epoll_create1(0)
    guard epollFD >= 0 else { fail("epoll_create1: \(errnoText())") }
    let readable = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
    let writable = readable | EPOLLOUT.rawValue

    func setInterest(_ peer: Peer, index: Int, operation: Int32) {
        var event = epoll_event()
        event.events = peer.wantsWritable ? writable : readable
        event.data.u64 = UInt64(index)
        guard epoll_ctl(epollFD, operation, peer.fd, &event) == 0 else { fail("epoll_ctl: \(errnoText())") }
    }

    var peers: [Peer] = []
    for index in 0..<options.connections {
        let (fd, early) = openConnection(options)
        Socket.setNonBlocking(fd)
        let peer = Peer(
            fd: fd, index: index, options: options, pattern: UnsafeRawPointer(pattern.baseAddress!), stats: stats)
        peers.append(peer)
        for _ in 0..<options.inFlight { peer.enqueue(now: monotonicNanoseconds()) }
        _ = peer.flush()
        setInterest(peer, index: index, operation: EPOLL_CTL_ADD)
        if !early.isEmpty {
            var copy = early
            copy.withUnsafeMutableBytes { peer.receive($0.baseAddress!, count: $0.count, now: monotonicNanoseconds()) }
        }
    }

    let readCapacity = 1 << 20
    let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: readCapacity, alignment: 64)
    let maxEvents = 256
    let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: maxEvents)

    let warmupEnd = monotonicNanoseconds() + UInt64(options.warmup * 1e9)
    let end = warmupEnd + UInt64(options.duration * 1e9)
    var measuredStart: UInt64 = 0
    var serverCPUStart: Double? = nil
    var clientCPUStart = 0.0

    while true {
        let now = monotonicNanoseconds()
        if !stats.measuring && now >= warmupEnd {
            stats.measuring = true
            measuredStart = now
            serverCPUStart = options.serverPID.flatMap(processCPUSeconds)
            clientCPUStart = selfCPUSeconds()
        }
        if now >= end { break }
        let ready = epoll_wait(epollFD, events, Int32(maxEvents), 5)
        if ready < 0 {
            if errno == EINTR { continue }
            fail("epoll_wait: \(errnoText())")
        }
        let received = monotonicNanoseconds()
        for e in 0..<Int(ready) {
            let index = Int(events[e].data.u64)
            let flags = events[e].events
            let peer = peers[index]
            if flags & EPOLLIN.rawValue != 0 {
                let n = read(peer.fd, readBuffer, readCapacity)
                if n > 0 {
                    peer.receive(readBuffer, count: n, now: received)
                } else if n == 0 {
                    fail("server closed connection \(index)")
                } else if errno != EAGAIN && errno != EINTR {
                    fail("read: \(errnoText())")
                }
            } else if flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0 {
                fail("connection \(index) failed (epoll flags 0x\(String(flags, radix: 16)))")
            }
            if peer.flush() { setInterest(peer, index: index, operation: EPOLL_CTL_MOD) }
        }
    }
    let measuredEnd = monotonicNanoseconds()
    stats.measuring = false
    stats.sending = false
    let serverCPUEnd = options.serverPID.flatMap(processCPUSeconds)
    let clientCPU = selfCPUSeconds() - clientCPUStart
    let elapsed = Double(measuredEnd - measuredStart) / 1e9
    for peer in peers { close(peer.fd) }

    // MARK: - Report

    let rate = Double(stats.messages) / elapsed
    let megabytes = Double(stats.payloadBytes) / elapsed / 1e6
    stats.latencies.sort()
    func percentile(_ p: Double) -> Double {
        guard !stats.latencies.isEmpty else { return 0 }
        let index = min(stats.latencies.count - 1, Int((p / 100 * Double(stats.latencies.count)).rounded(.down)))
        return Double(stats.latencies[index]) / 1000
    }
    let serverCPU = serverCPUStart.flatMap { before in serverCPUEnd.map { $0 - before } }
    let serverPerMessage = serverCPU.map { stats.messages > 0 ? $0 / Double(stats.messages) * 1e6 : 0 }

    print(
        "ws-bench \(modeName(options)) \(options.host):\(options.port) connections=\(options.connections) "
            + "in-flight=\(options.inFlight) size=\(options.size) measured=\(formatted(elapsed, 2))s")
    print("  messages/s: \(formatted(rate, 0))   MB/s: \(formatted(megabytes, 2)) (payload, each direction)")
    print("  latency (round trip): p50 \(formatted(percentile(50))) us, p99 \(formatted(percentile(99))) us")
    if let serverCPU, let serverPerMessage {
        print(
            "  server CPU: \(formatted(serverCPU, 2)) s = \(formatted(serverPerMessage, 2)) us/message "
                + "(\(formatted(serverCPU / elapsed * 100, 0))% of one core)")
    }
    print("  client CPU: \(formatted(clientCPU, 2)) s (\(formatted(clientCPU / elapsed * 100, 0))% of one core)")
    print(
        "RESULT label=\(options.label) mode=\(modeName(options)) conns=\(options.connections) inflight=\(options.inFlight) "
            + "size=\(options.size) seconds=\(formatted(elapsed, 3)) msgs_per_s=\(formatted(rate, 0)) "
            + "mb_per_s=\(formatted(megabytes, 2)) p50_us=\(formatted(percentile(50))) p99_us=\(formatted(percentile(99))) "
            + "server_cpu_us_per_msg=\(serverPerMessage.map { formatted($0, 3) } ?? "NA") "
            + "server_cpu_pct=\(serverCPU.map { formatted($0 / elapsed * 100, 0) } ?? "NA") "
            + "client_cpu_pct=\(formatted(clientCPU / elapsed * 100, 0))")
}

func modeName(_ options: Options) -> String { options.mode == .raw ? "raw" : options.text ? "ws-text" : "ws" }

func openConnection(_ options: Options) -> (fd: Int32, early: [UInt8]) {
    let fd = Socket.connect(host: options.host, port: options.port)
    let early = options.mode == .webSocket ? webSocketHandshake(fd: fd, host: options.host, port: options.port, path: options.path) : []
    return (fd, early)
}

signal(SIGPIPE, SIG_IGN)
let options = Options.parse(CommandLine.arguments)
if let idle = options.idleConnections {
    runIdle(options, count: idle)
} else {
    runLoad(options)
}
