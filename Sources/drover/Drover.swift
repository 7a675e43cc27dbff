import ArgumentParser
import DroverApp
import Foundation
import Logging
import NIOCore
import NIOPosix

@main
struct Drover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover",
        abstract: "A self-hosted IoT device management platform: MQTT broker, registry, shadows, jobs.",
        subcommands: [Serve.self, FleetConfigCommand.self, ConfigCommand.self, CACommand.self, KeysCommand.self, CertificatesCommand.self, AuditCommand.self, PolicyCommand.self,
                      SigV4CheckCommand.self])
}

struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (YAML). Default: ./drover.yaml if it exists.")
    var config: String?

    @Option(name: .long, help: "Data directory (SQLite, CA key). Default: ./drover-data")
    var dataDir: String?

    @Option(name: .long, help: "MQTT TCP port; 0 turns it off. Default: 1883 on 127.0.0.1")
    var mqttPort: Int?

    @Option(name: .long, help: "MQTT over mutual TLS port; 0 turns it off. Default: 8883")
    var mqttsPort: Int?

    @Option(name: .long, help: "Plain HTTP API, metrics and MQTT over WebSocket port; 0 turns it off. Default: 8080 on 127.0.0.1")
    var httpPort: Int?

    @Option(name: .long, help: "HTTPS API, metrics and MQTT over secure WebSocket port; 0 turns it off. Default: 8443")
    var httpsPort: Int?

    func load() throws -> DroverConfiguration {
        var configuration = try DroverConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment)
        if let dataDir { try configuration.set("data_dir", dataDir, source: "--data-dir") }
        if let mqttPort { try configuration.set("mqtt.port", "\(mqttPort)", source: "--mqtt-port") }
        if let mqttsPort { try configuration.set("mqtts.port", "\(mqttsPort)", source: "--mqtts-port") }
        if let httpPort { try configuration.set("http.port", "\(httpPort)", source: "--http-port") }
        if let httpsPort { try configuration.set("https.port", "\(httpsPort)", source: "--https-port") }
        return configuration
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the broker and the HTTP server.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let configuration: DroverConfiguration
        do {
            configuration = try options.load()
        } catch {
            throw ValidationError("\(error)")
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = LazyMetadataLogHandler(base: StreamLogHandler.standardError(label: label))
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "drover")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let app: DroverApplication
        do {
            app = try DroverApplication(configuration: configuration, eventLoopGroup: group, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        try await app.run()
        try await group.shutdownGracefully()
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config-keys", abstract: "List every configuration key and its environment variable.")

    func run() throws {
        for key in DroverConfiguration.allKeys {
            print("\(key)\t\(DroverConfiguration.environmentName(of: key))")
        }
    }
}
