import BenchSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Command-line options of `ws-bench`.
struct Options {
    enum Mode {
        /// RFC 6455 frames over a WebSocket connection (after an HTTP/1.1 upgrade).
        case webSocket
        /// No WebSocket: each message is a 4-byte big-endian length and the payload, against a plain TCP echo
        /// server. The same client loop and verification, minus the handshake, masking and frame headers.
        case raw
    }

    var host = "127.0.0.1"
    var port: UInt16 = 9001
    var path = "/"
    var mode = Mode.webSocket
    /// Text messages (valid UTF-8, ASCII) instead of binary: the server validates UTF-8 on every message.
    var text = false
    var connections = 1
    var inFlight = 1
    var size = 16
    var duration = 10.0
    var warmup = 1.0
    var serverPID: Int32? = nil
    var idleConnections: Int? = nil
    var hold = 2.0
    var idleWarmup = 200
    var label = ""

    static let usage = """
        usage: ws-bench [--url ws://127.0.0.1:9001/ | --raw --host H --port P] [options]

        Load generator for echo servers. Opens N connections, keeps P messages of S bytes in flight on each
        (masked client frames), verifies every echoed byte, and reports messages/s, MB/s (payload, one
        direction), round-trip latency percentiles and, with --server-pid, the server's CPU time per message.

          --url URL            ws://host:port/path of a WebSocket echo server (default ws://127.0.0.1:9001/)
          --raw                plain TCP echo server: 4-byte length-prefixed messages, no WebSocket
          --text               text messages (printable ASCII, so valid UTF-8) instead of binary
          --host H, --port P   address (instead of --url)
          -c, --connections N  connections (default 1)
          -p, --in-flight P    messages in flight per connection (default 1)
          -s, --size S         payload bytes per message, >= 8 (default 16); K and M suffixes accepted
          -d, --duration D     measured seconds (default 10)
          -w, --warmup W       seconds before measuring (default 1)
          --server-pid PID     read the server's utime+stime (/proc/PID/stat) and VmRSS around the run
          --idle N             instead of load: open N idle connections, report the server's VmRSS delta
                               per connection (after --idle-warmup connections, so that code and runtime
                               caches the first handshakes fault in are not counted per connection)
          --idle-warmup W      connections opened (and kept open) before the first VmRSS reading (default 200;
                               0: measure from the fresh server, as ws-bench did before 2026-12-02)
          --hold T             seconds to hold idle connections before measuring (default 2)
          --label TEXT         copied into the RESULT line
        """

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var iterator = arguments.dropFirst().makeIterator()
        func value(_ flag: String) -> String {
            guard let value = iterator.next() else { fail("\(flag) needs a value") }
            return value
        }
        while let argument = iterator.next() {
            switch argument {
            case "--url": options.setURL(value(argument))
            case "--raw": options.mode = .raw
            case "--text": options.text = true
            case "--host": options.host = value(argument)
            case "--port": options.port = need(UInt16(value(argument)), "bad --port")
            case "-c", "--connections": options.connections = need(Int(value(argument)), "bad \(argument)")
            case "-p", "--in-flight": options.inFlight = need(Int(value(argument)), "bad \(argument)")
            case "-s", "--size": options.size = need(parseSize(value(argument)), "bad \(argument)")
            case "-d", "--duration": options.duration = need(Double(value(argument)), "bad \(argument)")
            case "-w", "--warmup": options.warmup = need(Double(value(argument)), "bad \(argument)")
            case "--server-pid": options.serverPID = need(Int32(value(argument)), "bad --server-pid")
            case "--idle": options.idleConnections = need(Int(value(argument)), "bad --idle")
            case "--hold": options.hold = need(Double(value(argument)), "bad --hold")
            case "--idle-warmup":
                options.idleWarmup = need(Int(value(argument)).flatMap { $0 >= 0 ? $0 : nil }, "bad --idle-warmup")
            case "--label": options.label = value(argument)
            case "-h", "--help":
                print(usage)
                exit(0)
            default: fail("unknown argument \(argument)\n\n\(usage)")
            }
        }
        if options.host == "localhost" { options.host = "127.0.0.1" }
        guard options.connections >= 1, options.inFlight >= 1, options.size >= 8, options.duration > 0 else {
            fail("need --connections >= 1, --in-flight >= 1, --size >= 8, --duration > 0")
        }
        return options
    }

    mutating func setURL(_ url: String) {
        guard url.hasPrefix("ws://") else { fail("only ws:// URLs are supported: \(url)") }
        let rest = url.dropFirst(5)
        let authority = rest.prefix { $0 != "/" }
        path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = need(UInt16(authority[authority.index(after: colon)...]), "bad port in \(url)")
        } else {
            host = String(authority)
            port = 80
        }
    }

    static func parseSize(_ text: String) -> Int? {
        let upper = text.uppercased()
        if upper.hasSuffix("K") || upper.hasSuffix("KIB") {
            return Int(upper.prefix { $0.isNumber }).map { $0 << 10 }
        }
        if upper.hasSuffix("M") || upper.hasSuffix("MIB") {
            return Int(upper.prefix { $0.isNumber }).map { $0 << 20 }
        }
        return Int(text)
    }
}
