import Foundation
import Testing

@testable import DroverRegistry

@Suite("New resource ids")
struct ResourceIDTests {
    @Test("a lower-case version 4 UUID that Foundation reads back, different every time")
    func randomUUIDs() {
        var seen = Set<String>()
        var highNibbles = Set<Character>()
        for _ in 0..<20_000 {
            let id = newResourceID()
            #expect(id.count == 36)
            #expect(id == id.lowercased())
            let parsed = UUID(uuidString: id)
            #expect(parsed?.uuidString.lowercased() == id)
            let characters = Array(id)
            #expect(characters[8] == "-" && characters[13] == "-" && characters[18] == "-" && characters[23] == "-")
            #expect(characters[14] == "4")
            #expect(["8", "9", "a", "b"].contains(characters[19]))
            highNibbles.insert(characters[0])
            seen.insert(id)
        }
        #expect(seen.count == 20_000)
        // Every hex digit shows up in the first position: the bytes are not stuck.
        #expect(highNibbles.count == 16)
    }
}
