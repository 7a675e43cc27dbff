import Foundation
import Testing

@testable import DroverRegistry

@Suite("A thing's record, written by hand")
struct ThingRecordJSONTests {
    /// Characters that JSON must escape or that are easy to get wrong, with plain ones.
    static let alphabet: [Character] = ["a", "Z", "0", "_", "-", ":", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{8}",
                                        "\u{C}", "\u{1F}", "\u{7F}", "é", "€", "😀", " ", "{", "}", ",", "%"]

    static func randomString(_ generator: inout some RandomNumberGenerator, maxLength: Int = 12) -> String {
        String((0..<Int.random(in: 0...maxLength, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
    }

    static func randomThing(_ generator: inout some RandomNumberGenerator) -> Thing {
        var attributes: [String: String] = [:]
        for _ in 0..<Int.random(in: 0...5, using: &generator) {
            attributes[randomString(&generator)] = randomString(&generator)
        }
        let times: [Double] = [0, 1, 1_764_777_600, 1_764_777_600.123456, Double.random(in: 0...2e9, using: &generator), 1e300, 5e-324]
        return Thing(
            name: randomString(&generator), id: UUID().uuidString.lowercased(),
            typeName: Bool.random(using: &generator) ? randomString(&generator) : nil, attributes: attributes,
            version: Int64.random(in: Int64.min...Int64.max, using: &generator), createdAt: times.randomElement(using: &generator)!,
            billingGroupName: Bool.random(using: &generator) ? randomString(&generator) : nil)
    }

    @Test("JSONDecoder reads back the same thing, for 5 000 things with hostile strings")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let thing = Self.randomThing(&generator)
            let bytes = thing.recordJSON
            let decoded = try JSONDecoder().decode(Thing.self, from: Data(bytes))
            #expect(decoded == thing, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test("byte for byte what JSONEncoder with sorted keys wrote, for things without a slash or control character")
    func sameBytesAsTheEncoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var generator = SystemRandomNumberGenerator()
        let plain: [Character] = ["a", "b", "Z", "0", "9", "_", "-", ":", "\"", "\\", "é", " "]
        func plainString() -> String {
            String((0..<Int.random(in: 1...10, using: &generator)).map { _ in plain.randomElement(using: &generator)! })
        }
        for round in 0..<2_000 {
            var attributes: [String: String] = [:]
            // Keys of one case and length, where every sort order agrees.
            for _ in 0..<Int.random(in: 0...4, using: &generator) {
                attributes[String((0..<6).map { _ in "abcdefgh".randomElement(using: &generator)! })] = plainString()
            }
            let thing = Thing(
                name: plainString(), id: UUID().uuidString.lowercased(), typeName: round % 2 == 0 ? plainString() : nil,
                attributes: attributes, version: Int64(round), createdAt: round % 3 == 0 ? Double(round) : Date().timeIntervalSince1970,
                billingGroupName: round % 5 == 0 ? plainString() : nil)
            let expected = try encoder.encode(thing)
            #expect(thing.recordJSON == Array(expected), "\(String(decoding: expected, as: UTF8.self))")
        }
    }

    @Test("the registry stores things in that form: a reload from the records agrees")
    func registryUsesIt() async throws {
        let store = InMemoryRegistryStore()
        let registry = try Registry(store: store)
        let caller = Caller(principal: "test", region: "us-east-1")
        _ = try await registry.createThing(caller, name: "t1", typeName: nil, attributes: ["a/b": "c@d", "k": "v/w"])
        let record = try #require(try store.loadAll()[Registry.Kind.thing]?["t1"])
        #expect(record == (try #require(registry.snapshot.things["t1"])).recordJSON)
        let reloaded = try Registry(store: store)
        #expect(reloaded.snapshot.things["t1"] == registry.snapshot.things["t1"])
    }
}
