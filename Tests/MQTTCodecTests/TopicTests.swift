import MQTTCodec
import Testing

@Suite("Topic names and filters")
struct TopicTests {
    @Test("matching", arguments: [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        ("sport/#", "sport", true),
        ("#", "a/b/c", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("+/#", "a", true),
    ])
    func matching(filter: String, topic: String, expected: Bool) {
        #expect(TopicFilter(filter)!.matches(topic) == expected)
    }

    @Test("[MQTT-4.7.2-1] a leading wildcard does not match a $ topic", arguments: ["#", "+/monitor/Clients", "+/#"])
    func dollarTopics(filter: String) {
        #expect(!TopicFilter(filter)!.matches("$SYS/monitor/Clients"))
    }

    @Test("$SYS/# matches $SYS topics")
    func dollarExplicit() {
        #expect(TopicFilter("$SYS/#")!.matches("$SYS/monitor/Clients"))
        #expect(TopicFilter("$SYS/monitor/+")!.matches("$SYS/monitor/Clients"))
    }

    @Test("[MQTT-4.7.1-2] [MQTT-4.7.1-3] invalid filters", arguments: ["sport/tennis#", "sport/tennis/#/ranking", "sport+", "", "$share/g", "$share//a", "$share/g+/a"])
    func invalid(filter: String) {
        #expect(TopicFilter(filter) == nil)
    }

    @Test("[MQTT-4.8.2] shared subscription filters")
    func shared() {
        let filter = TopicFilter("$share/group1/sensors/+/temp")!
        #expect(filter.shareGroup == "group1")
        #expect(filter.filter == "sensors/+/temp")
        #expect(filter.matches("sensors/a/temp"))
    }

    @Test("[MQTT-4.7.1-1] topic names take no wildcards")
    func names() {
        #expect(TopicName.isValid("a/b"))
        #expect(!TopicName.isValid("a/+"))
        #expect(!TopicName.isValid("a/#"))
        #expect(!TopicName.isValid(""))
    }
}
