import BenchSupport

/// Command-line options of `hub-bench`.
struct Options {
    enum Scenario: String {
        /// Every connection keeps `inFlight` `Echo(tag)` invocations outstanding; each completes with its
        /// argument as result.
        case echo
        /// Every connection keeps `inFlight` `SendPayload(text of size bytes)` invocations outstanding; each
        /// completes without result.
        case payload
        /// `senders` connections each keep `inFlight` `EchoAll(tag)` calls outstanding (a call counts as done
        /// when the first connection of every server has received it); every connection receives every `send`.
        case broadcast
    }

    enum HubProtocol: String {
        case json
        case messagepack
    }

    struct Server {
        var host: String
        var port: UInt16
        var path: String
    }

    var servers: [Server] = []
    var scenario = Scenario.echo
    var hubProtocol = HubProtocol.json
    var connections = 1
    var senders = 1
    var inFlight = 1
    var size = 64
    var duration = 10.0
    var warmup = 1.0
    var serverPIDs: [Int32] = []
    var redisPID: Int32? = nil
    var label = ""

    static let usage = """
        usage: hub-bench --url ws://127.0.0.1:9100/hub [--url …] [options]

        Load generator for SignalR hubs with the contract of ASP.NET Core's benchmark hub (Echo, EchoAll,
        SendPayload; see hub-bench-server). WebSocket transport, skip-negotiation, JSON or MessagePack. Reports
        messages per second, latency percentiles and, with --server-pid, the servers' CPU time per message.
        With several --url, connection i goes to server i mod N; broadcast senders are the first connections.

          --url URL            ws://host:port/path of a hub (repeatable: several servers on one backplane)
          --scenario S         echo | payload | broadcast (default echo)
          --protocol P         json | messagepack (default json)
          -c, --connections N  connections (default 1); broadcast: every one receives every message
          --senders N          broadcast: connections that call EchoAll (default 1, at most 255)
          -p, --in-flight P    invocations outstanding per connection (broadcast: per sender) (default 1)
          -s, --size S         payload scenario: characters per SendPayload argument (default 64)
          -d, --duration D     measured seconds (default 10)
          -w, --warmup W       seconds before measuring (default 1)
          --server-pid PID     a hub server's process (repeatable): its utime+stime around the run
          --redis-pid PID      the Redis server's process: its CPU time, reported apart
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
            case "--url": options.servers.append(parseURL(value(argument)))
            case "--scenario": options.scenario = need(Scenario(rawValue: value(argument)), "bad --scenario")
            case "--protocol": options.hubProtocol = need(HubProtocol(rawValue: value(argument)), "bad --protocol")
            case "-c", "--connections": options.connections = need(Int(value(argument)), "bad \(argument)")
            case "--senders": options.senders = need(Int(value(argument)), "bad --senders")
            case "-p", "--in-flight": options.inFlight = need(Int(value(argument)), "bad \(argument)")
            case "-s", "--size": options.size = need(Int(value(argument)), "bad \(argument)")
            case "-d", "--duration": options.duration = need(Double(value(argument)), "bad \(argument)")
            case "-w", "--warmup": options.warmup = need(Double(value(argument)), "bad \(argument)")
            case "--server-pid": options.serverPIDs.append(need(Int32(value(argument)), "bad --server-pid"))
            case "--redis-pid": options.redisPID = need(Int32(value(argument)), "bad --redis-pid")
            case "--label": options.label = value(argument)
            case "-h", "--help":
                print(usage)
                exit(0)
            default: fail("unknown argument \(argument)\n\n\(usage)")
            }
        }
        if options.servers.isEmpty { options.servers = [Server(host: "127.0.0.1", port: 9100, path: "/hub")] }
        guard options.duration.isFinite, options.duration > 0, options.duration <= 86_400,
            options.warmup.isFinite, options.warmup >= 0, options.warmup <= 3_600
        else { fail("need 0 < --duration <= 86400 and 0 <= --warmup <= 3600 (seconds)") }
        guard options.size >= 0, options.size <= 16 << 20 else { fail("need 0 <= --size <= 16777216") }
        guard options.connections >= 1, options.inFlight >= 1,
            (1...255).contains(options.senders), options.senders <= options.connections,
            options.connections >= options.servers.count || options.scenario != .broadcast
        else {
            fail("need --connections >= 1 (broadcast: >= servers), 1 <= --senders <= min(255, connections), "
                + "--in-flight >= 1")
        }
        return options
    }

    static func parseURL(_ url: String) -> Server {
        guard url.hasPrefix("ws://") else { fail("only ws:// URLs are supported: \(url)") }
        let rest = url.dropFirst(5)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
        guard let colon = authority.lastIndex(of: ":") else { fail("the URL needs a port: \(url)") }
        var host = String(authority[..<colon])
        if host == "localhost" { host = "127.0.0.1" }
        let port = need(UInt16(authority[authority.index(after: colon)...]), "bad port in \(url)")
        return Server(host: host, port: port, path: path)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
