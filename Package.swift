// swift-tools-version:6.2
// Swift 6.2 or later: swift-log 1.16, swift-metrics 2.13 and swift-service-lifecycle 2.13 declare tools version
// 6.2 (swift-nio 2.101 and swift-nio-ssl 2.37 need 6.1). Package traits (`TLS`) need 6.1.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// swift-nio-ssl (BoringSSL) only when the package trait `TLS` is on (the default).
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["TLS"]))

let package = Package(
    name: "WebSocketEngine",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "WebSocketCore", targets: ["WebSocketCore"]),
        .library(name: "WebSocketHandshake", targets: ["WebSocketHandshake"]),
        .library(name: "WebSocketDeflate", targets: ["WebSocketDeflate"]),
        .library(name: "WebSocketNIO", targets: ["WebSocketNIO"]),
        .library(name: "WebSocketServer", targets: ["WebSocketServer"]),
        .library(name: "WebSocketClient", targets: ["WebSocketClient"]),
        .executable(name: "ws-echo", targets: ["ws-echo"]),
        .library(name: "HubProtocol", targets: ["HubProtocol"]),
        .executable(name: "ws-conformance-client", targets: ["ws-conformance-client"]),
        .executable(name: "ws-client", targets: ["ws-client"]),
        .library(name: "ServerSentEvents", targets: ["ServerSentEvents"]),
        .library(name: "EventSourceClient", targets: ["EventSourceClient"]),
        .executable(name: "sse-ticker", targets: ["sse-ticker"]),
        .executable(name: "sse-client", targets: ["sse-client"]),
        .library(name: "Hubs", targets: ["Hubs"]),
        .library(name: "HubClient", targets: ["HubClient"]),
        .executable(name: "hub-chat", targets: ["hub-chat"]),
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "RedisEventHistory", targets: ["RedisEventHistory"]),
        .library(name: "Backplane", targets: ["Backplane"]),
        .library(name: "BackplaneCodec", targets: ["BackplaneCodec"]),
        .library(name: "RedisBackplane", targets: ["RedisBackplane"]),
        .library(name: "HubsJWT", targets: ["HubsJWT"]),
    ],
    traits: [
        .trait(
            name: "TLS",
            description: "wss:// for the server and the client, through swift-nio-ssl (compiles BoringSSL)."
        ),
        .default(enabledTraits: ["TLS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Only the HubsJWT target uses it (with swift-crypto and swift-certificates); Hubs does not.
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        // Sans-I/O protocol core: stdlib only, no Foundation.
        .target(name: "WebSocketCore", swiftSettings: strict),
        // Sans-I/O opening handshake rules (RFC 6455 §4), with our own SHA-1 for Sec-WebSocket-Accept.
        .target(
            name: "WebSocketHandshake",
            dependencies: [.product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict
        ),
        // zlib from the system (Debian: zlib1g-dev; macOS: the SDK's), for permessage-deflate.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        // permessage-deflate (RFC 7692): negotiation and the MessageCodec for WebSocketCore.
        .target(
            name: "WebSocketDeflate",
            dependencies: ["WebSocketCore", "WebSocketHandshake", "CZlib"],
            swiftSettings: strict
        ),
        .target(
            name: "WebSocketNIO",
            dependencies: [
                "WebSocketCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WebSocketServer",
            dependencies: [
                "WebSocketCore", "WebSocketHandshake", "WebSocketNIO", "WebSocketDeflate", "ServerSentEvents",
                "Backplane",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WebSocketClient",
            dependencies: [
                "WebSocketCore", "WebSocketHandshake", "WebSocketNIO", "WebSocketDeflate",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ws-echo",
            dependencies: [
                "WebSocketServer",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ws-conformance-client",
            dependencies: [
                "WebSocketClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // A command-line client: headers, proxies, redirects, reconnection (README "The client").
        .executableTarget(
            name: "ws-client",
            dependencies: [
                "WebSocketClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // The README's programs (the core endpoint, a server, a client), compiled and run by Tests/Readme.
        .executableTarget(
            name: "example-echo-server",
            dependencies: ["WebSocketServer"],
            path: "Examples/EchoServer",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "example-core-echo",
            dependencies: ["WebSocketCore"],
            path: "Examples/CoreEcho",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "example-echo-client",
            dependencies: ["WebSocketClient"],
            path: "Examples/EchoClient",
            swiftSettings: strict
        ),
        .testTarget(name: "WebSocketCoreTests", dependencies: ["WebSocketCore", "WebSocketTestSupport"], swiftSettings: strict),
        // Test support without I/O (hand-written frame and HTTP-head builders/parsers, seeded RNG, Connection
        // feeding): stdlib and WebSocketCore only, so that every test target can use it.
        .target(name: "WebSocketTestSupport", dependencies: ["WebSocketCore"], path: "Tests/WebSocketTestSupport", swiftSettings: strict),
        // Test support over sockets: raw TCP client, scripted server peer, echo delegate, timeouts, certificates.
        .target(
            name: "WebSocketNIOTestSupport",
            dependencies: [
                "WebSocketTestSupport", "WebSocketServer", "WebSocketClient",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                nioSSL,
            ],
            path: "Tests/WebSocketNIOTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketDeflateTests",
            dependencies: ["WebSocketDeflate", "WebSocketCore", "WebSocketHandshake", "WebSocketTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketHandshakeTests",
            dependencies: [
                "WebSocketHandshake", "WebSocketTestSupport",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketIntegrationTests",
            dependencies: [
                "WebSocketServer", "WebSocketClient", "WebSocketTestSupport", "WebSocketNIOTestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // SignalR hub protocol without I/O (JSON and MessagePack codecs, handshake, negotiate): stdlib only.
        // libm: the stdlib's exact Double->Int conversions call rint/trunc/… and nothing else links it on Linux.
        .target(
            name: "HubProtocol",
            swiftSettings: strict,
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .testTarget(
            name: "HubProtocolTests",
            dependencies: ["HubProtocol", "WebSocketTestSupport"],
            swiftSettings: strict
        ),
        // Writes MessagePack/JSON hub messages as hex for Tests/HubProtocol (cross-checked with Python's msgpack).
        .executableTarget(name: "hubproto-vectors", dependencies: ["HubProtocol"], path: "Tests/HubProtocolVectors", swiftSettings: strict),
        // Server-Sent Events (WHATWG HTML §9.2): sans-I/O parser and encoder, stdlib only.
        .target(name: "ServerSentEvents", swiftSettings: strict),
        // EventSource-style client (http:// and https://) on SwiftNIO.
        .target(
            name: "EventSourceClient",
            dependencies: [
                "ServerSentEvents",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sse-ticker",
            dependencies: [
                "WebSocketServer", "RedisEventHistory", "RedisClient", "RedisBackplane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sse-client",
            dependencies: ["EventSourceClient", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EventStreamIntegrationTests",
            dependencies: [
                "WebSocketServer", "EventSourceClient", "WebSocketNIOTestSupport", "Backplane",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        // SignalR-compatible hub server: negotiate, WebSocket transport, dispatch, groups and users, on Server.
        .target(
            name: "Hubs",
            dependencies: [
                "HubProtocol", "WebSocketServer", "Backplane",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // A JWT bearer authenticator for Hubs on jwt-kit, apart so that Hubs users without JWT do not build jwt-kit.
        .target(
            name: "HubsJWT",
            dependencies: ["Hubs", .product(name: "JWTKit", package: "jwt-kit")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HubsJWTTests",
            dependencies: [
                "HubsJWT", "Hubs", "HubClient", "WebSocketServer", "WebSocketNIOTestSupport",
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strict
        ),
        // The chat example (README "Hubs"), with the test-only methods the Python interop tests call.
        .executableTarget(
            name: "hub-chat",
            dependencies: [
                "Hubs", "HubProtocol", "RedisBackplane", "RedisClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/HubChat",
            swiftSettings: strict
        ),
        .testTarget(
            name: "HubsTests",
            dependencies: [
                "Hubs", "HubProtocol", "Backplane", "WebSocketServer", "WebSocketClient", "WebSocketTestSupport",
                "WebSocketNIOTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The Swift hub client: negotiate, WebSocket transport, invocations, streams, client results, reconnect.
        .target(
            name: "HubClient",
            dependencies: [
                "HubProtocol", "WebSocketClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HubClientTests",
            dependencies: [
                "HubClient", "Hubs", "HubProtocol", "WebSocketServer", "WebSocketNIOTestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ServerSentEventsTests",
            dependencies: ["ServerSentEvents", "WebSocketTestSupport"],
            swiftSettings: strict
        ),
        // Redis serialization protocol (RESP2, RESP3) without I/O: incremental reply parser, command encoder.
        .target(name: "RESP", swiftSettings: strict),
        // A minimal Redis client on SwiftNIO for a pub/sub backplane (HELLO/AUTH, pipelining, pub/sub, streams;
        // TLS with the `TLS` trait).
        .target(
            name: "RedisClient",
            dependencies: [
                "RESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "RESPTests", dependencies: ["RESP"], swiftSettings: strict),
        // Cross-server fan-out: the `Backplane` protocol, its message types, and the in-process implementation.
        .target(
            name: "Backplane",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: strict
        ),
        // The backplane's wire format without I/O: the binary envelope of messages, group-change requests and
        // acknowledgements (strict decoding with limits; fuzzed by Fuzz/BackplaneEnvelopeFuzzer).
        .target(name: "BackplaneCodec", dependencies: ["Backplane"], swiftSettings: strict),
        // `Backplane` over Redis pub/sub (on RedisClient's `PubSubConnection`): channels per scope, group-change
        // acknowledgements, reconnection with backoff, outage metrics.
        .target(
            name: "RedisBackplane",
            dependencies: [
                "Backplane", "BackplaneCodec", "RedisClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Codec unit tests, and several RedisBackplanes against a real redis-server (started per test).
        // The Swift hub client against three hub-chat processes on one redis-server (runs the built hub-chat).
        .testTarget(
            name: "HubScaleOutTests",
            dependencies: [
                "HubClient", "RedisTestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RedisBackplaneTests",
            dependencies: [
                "RedisBackplane", "Backplane", "BackplaneCodec", "RedisClient", "RESP", "RedisTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The shared SSE replay history on a Redis stream (`XADD MAXLEN ~`, `XRANGE`).
        .target(
            name: "RedisEventHistory",
            dependencies: [
                "RedisClient", "WebSocketServer", "ServerSentEvents",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Against a real redis-server (started per test on a free port) and a fake RESP server.
        // A real redis-server per test (free port, stopped by PID), timeouts: shared by the Redis test targets.
        .target(
            name: "RedisTestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/RedisTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient", "RESP", "RedisEventHistory", "RedisTestSupport", "WebSocketServer", "EventSourceClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                nioSSL,
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
