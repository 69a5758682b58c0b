// swift-tools-version:6.1
import PackageDescription

// The benchmark package of WebSocketEngine: microbenchmarks (ordo-one/benchmark) that measure WebSocketCore and
// SwiftNIO's NIOWebSocket on the same bytes in the same run, the `ws-bench` load generator, and two peer servers
// for `compare.sh` (an NIOWebSocket echo server and a raw TCP echo server). It is a separate package so that the
// main package does not depend on the benchmark tooling.
let package = Package(
    name: "WebSocketEngineBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Without the TLS trait: no BoringSSL to build (the benchmarks run on plain ws:// and TCP).
        .package(name: "WebSocketEngine", path: "..", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "WebSocketBenchmarks",
            dependencies: [
                "EchoPeers",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
                .product(name: "WebSocketNIO", package: "WebSocketEngine"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/WebSocketBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .target(name: "CEpoll", path: "Sources/CEpoll"),
        // The peer servers' echo handlers (NIOWebSocket, raw TCP): shared by nio-ws-echo, nio-tcp-echo and the
        // EchoNIO allocation benchmark.
        .target(
            name: "EchoPeers",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Sources/EchoPeers"
        ),
        // Sockets, CPU and memory readings, the WebSocket opening handshake: shared by the load generators.
        .target(name: "BenchSupport", path: "Sources/BenchSupport"),
        .executableTarget(
            name: "ws-bench",
            dependencies: [
                "CEpoll", "BenchSupport",
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
            ],
            path: "Sources/ws-bench"
        ),
        // The SignalR hub load generator (Echo, SendPayload, EchoAll broadcasts; JSON and MessagePack) and the
        // hub it loads, on the contract of ASP.NET Core's SignalR benchmark server; see hubs.sh.
        .executableTarget(
            name: "hub-bench",
            dependencies: [
                "CEpoll", "BenchSupport",
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
            ],
            path: "Sources/hub-bench"
        ),
        .executableTarget(
            name: "hub-bench-server",
            dependencies: [
                .product(name: "Hubs", package: "WebSocketEngine"),
                .product(name: "HubProtocol", package: "WebSocketEngine"),
                .product(name: "WebSocketServer", package: "WebSocketEngine"),
                .product(name: "RedisBackplane", package: "WebSocketEngine"),
                .product(name: "RedisClient", package: "WebSocketEngine"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/hub-bench-server"
        ),
        .executableTarget(
            name: "deflate-throughput",
            dependencies: [
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
                .product(name: "WebSocketDeflate", package: "WebSocketEngine"),
            ],
            path: "Sources/deflate-throughput"
        ),
        .executableTarget(
            name: "ws-profile",
            dependencies: [.product(name: "WebSocketCore", package: "WebSocketEngine")],
            path: "Sources/ws-profile"
        ),
        .executableTarget(
            name: "nio-ws-echo",
            dependencies: [
                "EchoPeers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Sources/nio-ws-echo"
        ),
        .executableTarget(
            name: "nio-tcp-echo",
            dependencies: [
                "EchoPeers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/nio-tcp-echo"
        ),
    ],
    swiftLanguageModes: [.v6]
)
