import DroverApp
import DroverHTTP
import Foundation
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    private func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("drover-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("defaults are those of DESIGN.md")
    func defaults() throws {
        let config = try DroverConfiguration.load(file: nil, environment: [:])
        #expect(config.mqtt.bind == "127.0.0.1")
        #expect(config.mqtt.port == 1883)
        #expect(config.mqtts.port == 8883)
        #expect(config.http.port == 8080)
        // Plain HTTP on loopback only; HTTPS for everyone else.
        #expect(config.http.bind == "127.0.0.1")
        #expect(config.https.bind == "0.0.0.0")
        #expect(config.https.port == 8443)
        #expect(config.httpLimits == HTTPLimits())
        #expect(config.allowedRegions == ["us-east-1"])
        #expect(config.allowedAPIHostNames.isSuperset(of: ["localhost", "127.0.0.1", "::1"]))
        #expect(config.dataDir == "./drover-data")
        #expect(config.limits.maxPacketSize == 1_048_576)
    }

    @Test("the file sets values and the environment wins over it")
    func precedence() throws {
        let path = try write("""
            data_dir: /tmp/x
            mqtt:
              port: 1999
              bind: 0.0.0.0
            limits:
              max_queued_messages: 50
              max_packet_size: 4096
            """)
        let config = try DroverConfiguration.load(
            file: path, environment: ["DROVER_LIMITS_MAX_QUEUED_MESSAGES": "7", "DROVER_HTTP_PORT": "0"])
        #expect(config.dataDir == "/tmp/x")
        #expect(config.mqtt.port == 1999)
        #expect(config.mqtt.bind == "0.0.0.0")
        #expect(config.limits.maxQueuedMessages == 7)
        #expect(config.limits.maxPacketSize == 4096)
        #expect(config.http.port == 0)
    }

    @Test("an unknown key is an error that names it")
    func unknownKey() throws {
        let path = try write("mqtt:\n  prot: 1883\n")
        #expect {
            _ = try DroverConfiguration.load(file: path, environment: [:])
        } throws: { error in
            "\(error)".contains("mqtt.prot")
        }
    }

    @Test("a bad value is an error that says what is allowed", arguments: [
        ("DROVER_MQTT_PORT", "70000", "mqtt.port"),
        ("DROVER_LIMITS_MAX_PACKET_SIZE", "big", "limits.max_packet_size"),
        ("DROVER_MQTT_ALLOW_ANONYMOUS", "maybe", "true or false"),
        ("DROVER_LOG_LEVEL", "loud", "log_level"),
    ])
    func badValue(variable: String, value: String, mention: String) {
        #expect {
            _ = try DroverConfiguration.load(file: nil, environment: [variable: value])
        } throws: { error in
            "\(error)".contains(mention) && "\(error)".contains(variable)
        }
    }

    @Test("a file that is not YAML is an error")
    func notYAML() throws {
        let path = try write("mqtt: [unclosed\n")
        #expect(throws: DroverConfiguration.Error.self) {
            _ = try DroverConfiguration.load(file: path, environment: [:])
        }
    }

    @Test("every key has an environment variable")
    func environmentNames() {
        #expect(DroverConfiguration.environmentName(of: "limits.max_packet_size") == "DROVER_LIMITS_MAX_PACKET_SIZE")
        #expect(DroverConfiguration.allKeys.contains("http.allow_anonymous_websocket"))
    }
}
