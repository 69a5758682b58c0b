// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

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
        .executable(name: "ws-conformance-client", targets: ["ws-conformance-client"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // Sans-I/O protocol core: stdlib only, no Foundation.
        .target(name: "WebSocketCore", swiftSettings: strict),
        // Sans-I/O opening handshake rules (RFC 6455 §4): stdlib and HTTPTypes only (SHA-1 is our own).
        .target(
            name: "WebSocketHandshake",
            dependencies: [.product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict
        ),
        // zlib from the system (Debian: zlib1g-dev), for permessage-deflate.
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
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WebSocketServer",
            dependencies: [
                "WebSocketCore", "WebSocketHandshake", "WebSocketNIO", "WebSocketDeflate",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WebSocketClient",
            dependencies: [
                "WebSocketCore", "WebSocketHandshake", "WebSocketNIO", "WebSocketDeflate",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ws-echo",
            dependencies: [
                "WebSocketServer", "WebSocketCore", "WebSocketDeflate", "WebSocketNIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ws-conformance-client",
            dependencies: [
                "WebSocketClient", "WebSocketCore", "WebSocketDeflate", "WebSocketNIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "WebSocketCoreTests", dependencies: ["WebSocketCore"], swiftSettings: strict),
        .testTarget(
            name: "WebSocketDeflateTests",
            dependencies: ["WebSocketDeflate", "WebSocketCore", "WebSocketHandshake"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketHandshakeTests",
            dependencies: [
                "WebSocketHandshake",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebSocketIntegrationTests",
            dependencies: [
                "WebSocketServer", "WebSocketClient", "WebSocketCore", "WebSocketHandshake", "WebSocketNIO",
                "WebSocketDeflate",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
