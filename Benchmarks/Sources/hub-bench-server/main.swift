// hub-bench-server: the hub that `hub-bench` loads, on the contract of ASP.NET Core SignalR's benchmark server
// (src/SignalR/perf/benchmarkapps/BenchmarkServer, `EchoHub`): Echo, EchoAll, Broadcast, SendPayload,
// GetCurrentTime. Times are Int64 nanoseconds of the caller's choosing (the load generator sends tags it can look
// up; ASP.NET Core's hub takes a DateTime), so the JSON and MessagePack encodings carry an integer.
//
// usage: hub-bench-server [--port P] [--redis HOST:PORT] [--redis-prefix P] [--server-id ID] [--log-level L]
//                         [--max-buffered-bytes N] [--executor nio|default]
// Serves the hub at /hub on 127.0.0.1 (WebSockets only: the benchmark measures the hub layer, not a transport),
// JSON and MessagePack. With --redis, the hub's clients are shared with the other servers on that Redis
// through RedisBackplane (a broadcast goes through Redis to every server, this one included).

import HubProtocol
import Hubs
import Logging
import NIOPosix
import RedisBackplane
import RedisClient
import WebSocketServer

#if canImport(Glibc)
    import Glibc
#endif

/// What the hub calls on its clients.
enum BenchClient {
    /// A broadcast (EchoAll, Broadcast): the time (or tag) it carries.
    static let send = ClientMethod<(_ time: Int64) -> Void>("send")
}

struct EchoHub: Hub {
    let context: HubContext

    init(context: HubContext) {
        self.context = context
    }

    static func registerMethods(_ methods: inout HubMethods<EchoHub>) {
        // The caller's value back as the invocation's result.
        methods.on("Echo") { (_: EchoHub, time: Int64) -> Int64 in time }
        // The caller's value to every connection of the hub (on every server, with a backplane).
        methods.on("EchoAll") { (hub: EchoHub, time: Int64) in
            try await hub.context.clients.all.send(BenchClient.send, time)
        }
        // The server broadcasts its clock (nanoseconds since it started) for `duration` seconds, as fast as the
        // sends complete (each waits only for the local enqueue and the backplane publish).
        methods.on("Broadcast") { (hub: EchoHub, duration: Int) -> Int in
            let clock = ContinuousClock()
            let start = clock.now
            let deadline = start.advanced(by: .seconds(max(0, min(duration, 600))))
            var sent = 0
            while clock.now < deadline && !Task.isCancelled {
                let elapsed = start.duration(to: clock.now).components
                try await hub.context.clients.all.send(
                    BenchClient.send, elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
                sent += 1
            }
            return sent
        }
        // The payload is received, decoded and dropped.
        methods.on("SendPayload") { (_: EchoHub, payload: String) in _ = payload }
        methods.on("GetCurrentTime") { (_: EchoHub) -> Int64 in
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        }
    }
}

func usage() -> Never {
    print(
        "usage: hub-bench-server [--port P] [--redis HOST:PORT] [--redis-prefix P] [--server-id ID] "
            + "[--log-level L] [--max-buffered-bytes N] [--executor nio|default]")
    exit(2)
}

var port = 9100
var redis: (host: String, port: Int)?
var prefix = "hub-bench"
var serverId = "hub-bench-\(getpid())"
var level = Logger.Level.warning
var maxBufferedBytes: Int?
var nioExecutor = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    guard let value = arguments.next() else { usage() }
    switch argument {
    case "--port":
        guard let number = Int(value), (0...65535).contains(number) else { usage() }
        port = number
    case "--redis":
        let parts = value.split(separator: ":")
        guard parts.count == 2, let redisPort = Int(parts[1]), (1...65535).contains(redisPort) else { usage() }
        redis = (String(parts[0]), redisPort)
    case "--redis-prefix": prefix = value
    case "--server-id": serverId = value
    case "--log-level": level = Logger.Level(rawValue: value) ?? { usage() }()
    case "--max-buffered-bytes":
        guard let number = Int(value), number > 0 else { usage() }
        maxBufferedBytes = number
    case "--executor":
        guard value == "nio" || value == "default" else { usage() }
        nioExecutor = value == "nio"
    default: usage()
    }
}

// With `--executor nio`, Swift concurrency's global executor runs on NIO's event loop threads (SwiftNIO's opt-in
// take-over): a hub method then continues on a loop thread instead of hopping to the default executor's threads.
if nioExecutor && !NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() {
    print("hub-bench-server: could not install NIO's event loops as the global executor")
    exit(1)
}
var logger = Logger(label: "hub-bench-server")
logger.logLevel = level
var hubConfiguration = HubConfiguration()
hubConfiguration.logger = logger
hubConfiguration.transports = [.webSockets]
if let maxBufferedBytes { hubConfiguration.maximumBufferedBytes = maxBufferedBytes }
var backplane: RedisBackplane?
if let redis {
    var configuration = RedisBackplaneConfiguration(
        redis: RedisConfiguration(host: redis.host, port: redis.port), prefix: prefix)
    configuration.logger = logger
    backplane = RedisBackplane(serverId: serverId, configuration: configuration)
}
let endpoint = HubEndpoint(path: "/hub", hub: EchoHub.self, configuration: hubConfiguration, backplane: backplane)
var serverConfiguration = Server.Configuration(host: "127.0.0.1", port: port)
serverConfiguration.logger = logger
let server = Server(
    configuration: serverConfiguration, routes: [endpoint.webSocketRoute], httpRoutes: endpoint.httpRoutes)
print("hub-bench-server: /hub on 127.0.0.1:\(port)\(redis.map { ", Redis \($0.host):\($0.port)" } ?? "")")
fflush(nil)  // the line reaches a redirected log before the server runs
// Stopped by SIGTERM (its default action); nothing here needs a graceful end.
try await withThrowingTaskGroup(of: Void.self) { group in
    if let backplane { group.addTask { try await backplane.run() } }
    group.addTask { try await endpoint.run() }
    group.addTask { try await server.run() }
    try await group.next()
    group.cancelAll()
}
