// swift-tools-version:6.0
// libFuzzer targets for WebSocketEngine. Build and run with `Fuzz/run.sh TARGET SECONDS` (see Fuzz/README.md):
// every target is built with `-sanitize=fuzzer,address -parse-as-library`.
import PackageDescription

func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Sources/\(name)")
}

let core: Target.Dependency = .product(name: "WebSocketCore", package: "WebSocketEngine")
let handshake: Target.Dependency = .product(name: "WebSocketHandshake", package: "WebSocketEngine")
let deflate: Target.Dependency = .product(name: "WebSocketDeflate", package: "WebSocketEngine")
let sse: Target.Dependency = .product(name: "ServerSentEvents", package: "WebSocketEngine")
let httpTypes: Target.Dependency = .product(name: "HTTPTypes", package: "swift-http-types")
let hubProtocol: Target.Dependency = .product(name: "HubProtocol", package: "WebSocketEngine")
let resp: Target.Dependency = .product(name: "RESP", package: "WebSocketEngine")
let backplaneCodec: Target.Dependency = .product(name: "BackplaneCodec", package: "WebSocketEngine")
let backplane: Target.Dependency = .product(name: "Backplane", package: "WebSocketEngine")

let package = Package(
    name: "WebSocketFuzz",
    dependencies: [
        .package(name: "WebSocketEngine", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [core]),
        fuzzer("FrameParserFuzzer", [core]),
        fuzzer("ConnectionFuzzer", [core]),
        fuzzer("HandshakeRequestFuzzer", [handshake, httpTypes]),
        fuzzer("HandshakeResponseFuzzer", [handshake, httpTypes]),
        fuzzer("ExtensionHeaderFuzzer", [handshake]),
        fuzzer("ExtendedConnectFuzzer", [handshake, httpTypes]),
        fuzzer("InflateFuzzer", [core, deflate]),
        // Linked with lld: gold 2.40 stops with "internal error in format_file_lineno" on this target.
        .executableTarget(
            name: "ProxyReplyFuzzer",
            dependencies: ["FuzzSupport", handshake],
            path: "Sources/ProxyReplyFuzzer",
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
        fuzzer("EventStreamParserFuzzer", [sse]),
        fuzzer("DifferentialFuzzer", [
            core,
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ]),
        fuzzer("HubProtocolFuzzer", [hubProtocol]),
        fuzzer("RESPParserFuzzer", [resp]),
        fuzzer("BackplaneEnvelopeFuzzer", [backplane, backplaneCodec]),
    ],
    swiftLanguageModes: [.v6]
)
