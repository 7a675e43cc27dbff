// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "drover",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .executable(name: "drover-load", targets: ["drover-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Bytes <-> packets. NIOCore only: no I/O, no policy.
        .target(
            name: "MQTTCodec",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // Sessions, routing, retained messages, wills, hooks and the storage port.
        .target(
            name: "MQTTBroker",
            dependencies: [
                "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // AWS IoT policy documents: parsing (with error positions), variables, evaluation.
        // No dependencies: the broker's authorizer and the API both use it.
        .target(name: "DroverPolicy", swiftSettings: swiftSettings),
        // AWS IoT Device Shadow documents: JSON, merge, metadata, delta, and the reserved-topic payloads.
        // No dependencies and no I/O: the MQTT side and the iot-data HTTP API share it.
        .target(name: "DroverShadow", swiftSettings: swiftSettings),
        // The certificate authority: keys, certificates, CSRs, chains. swift-certificates only.
        .target(
            name: "DroverIdentity",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // Things, thing types, certificates, policies and access keys; the audit log; a storage port.
        .target(
            name: "DroverRegistry",
            dependencies: [
                "DroverPolicy",
                // Hash tries: a copy of the state shares its nodes, so a write costs O(log n).
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Device Shadow service: MQTT topics through an in-process client, and iot-data.
        .target(
            name: "DroverShadowService",
            dependencies: [
                "DroverShadow", "MQTTBroker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Jobs and OTA: the job execution state machine, its timers and retries, and the
        // rollout-rate and abort rules, and the device documents (read and written with the
        // shadow module's bounded JSON). Pure: no storage, no MQTT, no HTTP.
        .target(
            name: "DroverJobs",
            dependencies: ["DroverShadow"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverJobsTests",
            dependencies: ["DroverJobs"],
            swiftSettings: swiftSettings
        ),
        // Fleet configuration: versioned templates deployed into shadows of thing groups and thing
        // types, with status, rollback and reset. Reaches shadows through the shadow service.
        .target(
            name: "DroverFleetConfig",
            dependencies: [
                "DroverShadow", "DroverShadowService", "DroverRegistry",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Network listeners (TCP today; TLS and mutual TLS next), each a Service.
        .target(
            name: "DroverListeners",
            dependencies: [
                "MQTTBroker",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The broker's storage port on SQLite (GRDB, WAL), with group commit.
        .target(
            name: "DroverSQLite",
            dependencies: [
                "MQTTBroker", "DroverRegistry", "DroverShadowService", "DroverFleetConfig",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The control plane's storage ports on PostgreSQL (postgres-nio): the same tables and change
        // feed as drover.sqlite, a connection pool, versioned migrations, LISTEN/NOTIFY wake-ups.
        .target(
            name: "DroverPostgres",
            dependencies: [
                "DroverRegistry", "DroverShadowService", "DroverFleetConfig",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Signature Version 4: canonical requests, verification and signing. Crypto and Foundation
        // only, so that the load tool and the fuzzers use it without the HTTP stack.
        .target(
            name: "DroverSigV4",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // The HTTP port: health, metrics, MQTT over WebSocket, and the AWS IoT control plane
        // (SigV4, AWS error shapes).
        .target(
            name: "DroverHTTP",
            dependencies: [
                "MQTTBroker", "MQTTCodec", "DroverRegistry", "DroverPolicy", "DroverIdentity", "DroverShadow", "DroverShadowService",
                "DroverFleetConfig", "DroverSigV4",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // The composition root: configuration, and one ServiceGroup of everything.
        .target(
            name: "DroverApp",
            dependencies: [
                "MQTTBroker", "DroverListeners", "DroverHTTP", "DroverSQLite", "DroverPostgres", "DroverRegistry", "DroverIdentity",
                "DroverShadowService", "DroverFleetConfig",
                "DroverPolicy",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "drover",
            dependencies: [
                "DroverApp", "DroverHTTP", "DroverSigV4", "DroverHTTPClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small HTTP/1.1 client on NIO (plain or TLS with a CA file of its own), for the
        // command line and the load tool.
        .target(
            name: "DroverHTTPClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The load tool: a minimal MQTT client on NIOPosix, independent of the broker's code; and
        // signed control-plane requests.
        .executableTarget(
            name: "drover-load",
            dependencies: [
                // To sign control-plane requests as boto3 does.
                "DroverSigV4", "DroverHTTPClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fuzzing entry points (codec, connection, shadow JSON, policy, SigV4): libFuzzer runs
        // them through drover-fuzz, and the tests replay the corpus and every crash found.
        .target(
            name: "DroverFuzzTargets",
            dependencies: [
                "MQTTCodec", "MQTTBroker", "DroverShadow", "DroverPolicy", "DroverSigV4", "DroverJobs",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "drover-fuzz",
            dependencies: ["DroverFuzzTargets"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverFuzzTests",
            dependencies: ["DroverFuzzTargets"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverRegistryTests",
            dependencies: ["DroverRegistry", "DroverPolicy"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverPolicyTests",
            dependencies: ["DroverPolicy"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverShadowTests",
            dependencies: ["DroverShadow"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverFleetConfigTests",
            dependencies: ["DroverFleetConfig", "DroverShadow"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverIdentityTests",
            dependencies: ["DroverIdentity", .product(name: "X509", package: "swift-certificates")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MQTTCodecTests",
            dependencies: ["MQTTCodec", .product(name: "NIOTestUtils", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MQTTBrokerTests",
            dependencies: ["MQTTBroker", .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverSQLiteTests",
            dependencies: [
                "DroverSQLite", "MQTTBroker", "DroverRegistry", "DroverFleetConfig", "DroverShadowService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // One contract for every control-plane backend: the same tests against drover.sqlite and
        // against PostgreSQL (DROVER_TEST_POSTGRES_URL; scripts/test.sh starts a private server).
        .testTarget(
            name: "DroverStorageContractTests",
            dependencies: [
                "DroverSQLite", "DroverPostgres", "DroverRegistry", "DroverFleetConfig", "DroverShadowService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DroverAppTests",
            dependencies: [
                "DroverApp", "DroverHTTP", "DroverSigV4", "MQTTBroker",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
