import DroverRegistry
import DroverShadow
import DroverShadowService
import Foundation
import HTTPTypes
import Hummingbird
import MQTTCodec
import NIOCore

/// The `iot-data` operations: GetThingShadow, UpdateThingShadow, DeleteThingShadow,
/// ListNamedShadowsForThing and Publish, signed like the control plane.
extension ControlPlane {
    func shadow(_ call: Call, _ operation: String) async throws -> Response {
        guard let shadows = configuration.shadows else { throw RegistryError(.internalFailure, "shadows are not enabled") }
        let answer = await shadows.http(thing: try call.parameter("thingName"), name: call.query("name") ?? "",
                                        operation: operation, payload: call.body)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let type = answer.errorType { headers[HTTPField.Name("x-amzn-ErrorType")!] = type }
        return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    func getThingShadow(_ call: Call) async throws -> Response { try await shadow(call, "get") }
    func updateThingShadow(_ call: Call) async throws -> Response { try await shadow(call, "update") }
    func deleteThingShadow(_ call: Call) async throws -> Response { try await shadow(call, "delete") }

    struct NamedShadowsOutput: Encodable {
        var results: [String]
        var nextToken: String?
        var timestamp: Int64
    }

    func listNamedShadowsForThing(_ call: Call) async throws -> Response {
        guard let shadows = configuration.shadows else { throw RegistryError(.internalFailure, "shadows are not enabled") }
        let names = try await shadows.namedShadows(thing: try call.parameter("thingName"))
        let page = try Registry.pageOfStrings(names, maxResults: try call.queryInt("pageSize"), nextToken: call.query("nextToken"))
        return Self.json(NamedShadowsOutput(results: page.items, nextToken: page.nextToken, timestamp: Int64(Date().timeIntervalSince1970)))
    }

    /// Publish: into the broker, as an in-process client (QoS 0 or 1).
    func publish(_ call: Call) async throws -> Response {
        guard let shadows = configuration.shadows else { throw RegistryError(.internalFailure, "publishing is not enabled") }
        // The topic is the rest of the path, percent-decoded (botocore encodes '/' in it).
        let raw = call.request.uri.path.dropFirst("/topics/".count)
        let topic = String(raw).removingPercentEncoding ?? String(raw)
        let quoted = topic.clipped(toBytes: 64)
        guard TopicName.isValid(topic), !topic.utf8.contains(0) else {
            throw RegistryError(.invalidRequest, "'\(quoted)' is not a valid topic name")
        }
        if let limit = shadows.topicLimit(topic) {
            throw RegistryError(.invalidRequest, "topic '\(quoted)' is over the broker's limit (\(limit.rawValue))")
        }
        // The shadow service's replies are its own: nobody publishes them for it.
        guard !ShadowService.isReplyTopic(topic) else {
            throw RegistryError(.unauthorized, "topic '\(quoted)' is a reply topic: only the shadow service publishes there")
        }
        let qos: MQTTQoS
        switch call.query("qos") ?? "0" {
        case "0": qos = .atMostOnce
        case "1": qos = .atLeastOnce
        default: throw RegistryError(.invalidRequest, "qos must be 0 or 1")
        }
        do {
            try await shadows.publish(topic: topic, payload: call.body, qos: qos, retain: call.query("retain") == "true")
        } catch {
            throw RegistryError(.internalFailure, "the message was not accepted: \(error)")
        }
        return Self.empty()
    }
}
