@testable import MQTTBroker
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@Suite("In-process client")
struct InProcessClientTests {
    @Test("it subscribes, receives QoS 1 from a network client, answers, and is not counted as a client")
    func roundTrip() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxConnections = 1 }
        let received = NIOLockedValueBox<[String]>([])
        let service = InProcessClient(broker: broker, clientId: "$drover/svc", eventLoop: loop) { publish in
            received.withLockedValue { $0.append(publish.topic) }
        }
        let connected = service.connect()
        loop.run()
        try connected.wait()
        let subscribed = service.subscribe(["req/+"])
        loop.run()
        try subscribed.wait()
        #expect(broker.connectionCount == 0)

        let device = try TestClient(broker: broker, loop: loop)
        #expect(try device.connect("device")?.reasonCode == .success, "the in-process client must not take the only place")
        _ = try device.subscribe("resp/#", qos: .atLeastOnce)
        try device.publish("req/1", "hello", qos: .atLeastOnce, id: 7)
        loop.run()
        #expect(received.withLockedValue { $0 } == ["req/1"])
        let answered = service.publish("resp/1", ByteBuffer(string: "done"), qos: .atLeastOnce)
        loop.run()
        try answered.wait()
        #expect(try device.publishes().map(\.text) == ["done"])
        #expect(broker.sessionInflightCount("$drover/svc") == 0, "the client's PUBACK for the request went back")
    }
}
