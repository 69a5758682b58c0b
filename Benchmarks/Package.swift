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
        .package(name: "WebSocketEngine", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "WebSocketBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/WebSocketBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .target(name: "CEpoll", path: "Sources/CEpoll"),
        .executableTarget(
            name: "ws-bench",
            dependencies: [
                "CEpoll",
                .product(name: "WebSocketCore", package: "WebSocketEngine"),
            ],
            path: "Sources/ws-bench"
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/nio-tcp-echo"
        ),
    ],
    swiftLanguageModes: [.v6]
)
