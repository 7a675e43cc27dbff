/// An action or resource pattern, compiled once at parse time into segments and matched against
/// UTF-8 bytes on the broker's hot path.
///
/// The segments are plain values (offsets into one byte buffer, indexes into the variables), so
/// walking them retains and releases nothing; only substituting a variable touches the context.
///
/// Invariants, which the matcher relies on:
/// - No two `anyRun` segments are adjacent, no literal is empty, and no two literals are
///   adjacent (a variable may sit next to a literal: its text is only known at evaluation).
/// - Every literal, and every substituted value, is whole UTF-8 scalars, so a literal can only
///   match at a scalar boundary, its first byte is never a continuation byte, and `?` always
///   starts at a scalar.
struct CompiledPattern: Hashable, Sendable {
    /// What a pattern is written as, before compilation.
    enum Piece: Hashable, Sendable {
        /// Bytes that must appear as they are. `+`, `#`, and text written as `${*}`, `${?}` or
        /// `${$}` are literal.
        case literal([UInt8])
        /// Text taken from the context at evaluation; it matches literally, never as a wildcard.
        case variable(PolicyVariable)
        /// `*`: any run of characters, including none and including `/`.
        case anyRun
        /// `?`: exactly one character (one Unicode scalar).
        case anyCharacter
    }

    enum Segment: Hashable, Sendable {
        /// `literals[start..<start + count]`.
        case literal(start: Int, count: Int)
        /// `variables[index]`.
        case variable(index: Int)
        case anyRun
        case anyCharacter
    }

    private(set) var segments: [Segment] = []
    /// The bytes of every literal, one after the other.
    private(set) var literals: [UInt8] = []
    private(set) var variables: [PolicyVariable] = []
    /// Set when the pattern is a lone `*`, so the common `"Resource": "*"` costs nothing.
    private(set) var matchesEverything = false

    /// Compiles pieces, restoring the invariants above (adjacent literals are merged, runs of `*`
    /// collapse into one, empty literals disappear).
    init(_ pieces: [Piece]) {
        for piece in pieces {
            switch (piece, segments.last) {
            case (.literal(let bytes), _) where bytes.isEmpty:
                continue
            case (.literal(let bytes), .literal(let start, let count)):
                literals.append(contentsOf: bytes)
                segments[segments.count - 1] = .literal(start: start, count: count + bytes.count)
            case (.literal(let bytes), _):
                segments.append(.literal(start: literals.count, count: bytes.count))
                literals.append(contentsOf: bytes)
            case (.variable(let variable), _):
                segments.append(.variable(index: variables.count))
                variables.append(variable)
            case (.anyRun, .anyRun):
                continue
            case (.anyRun, _):
                segments.append(.anyRun)
            case (.anyCharacter, _):
                segments.append(.anyCharacter)
            }
        }
        matchesEverything = segments == [.anyRun]
    }

    /// Whether the whole of `text` matches a pattern that has no variables (an action).
    func matches(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        precondition(variables.isEmpty, "a pattern with variables needs a context")
        return match(text) { _ in nil }
    }

    /// Whether the whole of `text` matches once variables are substituted from `context`. A
    /// variable without a value makes the pattern match nothing, whatever the wildcards around it.
    func matches(_ text: UnsafeBufferPointer<UInt8>, context: PolicyContext) -> Bool {
        if matchesEverything { return true }
        for variable in variables where variable.value(in: context) == nil { return false }
        return match(text) { variables[$0].value(in: context) }
    }

    /// The matcher is the classic one for `*` with a single backtrack point: between two `*`
    /// every segment matches at a fixed place, so taking the leftmost place for each run is
    /// never worse, and a failed attempt only moves the last `*` on. That is O(text × pattern)
    /// in the worst case, with no allocation and no regex. When a literal follows the `*`, the
    /// `*` moves straight to the next place where the literal's first byte occurs.
    ///
    /// `value` returns the text of a variable; the caller has checked that every one resolves.
    @inline(__always)
    private func match(_ text: UnsafeBufferPointer<UInt8>, value: (Int) -> String?) -> Bool {
        if matchesEverything { return true }
        return literals.withUnsafeBufferPointer { literals in
            segments.withUnsafeBufferPointer { segments in
                let count = text.count
                var segment = 0
                var position = 0
                var starSegment = -1
                var starPosition = 0
                while true {
                    if segment < segments.count {
                        switch segments[segment] {
                        case .anyRun:
                            starSegment = segment
                            starPosition = position
                            segment += 1
                            continue
                        case .anyCharacter:
                            if position < count {
                                position += Self.scalarLength(text, at: position)
                                segment += 1
                                continue
                            }
                        case .literal(let start, let length):
                            if Self.equal(literals, start, text, position, count: length) {
                                position += length
                                segment += 1
                                continue
                            }
                        case .variable(let index):
                            if let utf8 = value(index)?.utf8,
                                let end = Self.match(utf8, count: utf8.count, in: text, at: position)
                            {
                                position = end
                                segment += 1
                                continue
                            }
                        }
                    } else if position == count {
                        return true
                    }
                    // Mismatch: let the last `*` swallow more, or fail if there is none.
                    guard starSegment >= 0, starPosition < count else { return false }
                    starPosition += Self.scalarLength(text, at: starPosition)
                    if starSegment + 1 < segments.count, case .literal(let start, _) = segments[starSegment + 1] {
                        let first = literals[start]
                        while starPosition < count && text[starPosition] != first { starPosition += 1 }
                    }
                    position = starPosition
                    segment = starSegment + 1
                }
            }
        }
    }

    /// Whether `literals[start..<start + count]` appears in `text` at `position`, compared
    /// eight bytes at a time: ARNs share long prefixes, so most of the matching time is here.
    @inline(__always)
    private static func equal(
        _ literals: UnsafeBufferPointer<UInt8>,
        _ start: Int,
        _ text: UnsafeBufferPointer<UInt8>,
        _ position: Int,
        count: Int
    ) -> Bool {
        guard count <= text.count - position, let lhs = literals.baseAddress, let rhs = text.baseAddress else {
            return false
        }
        let left = UnsafeRawPointer(lhs + start)
        let right = UnsafeRawPointer(rhs + position)
        var offset = 0
        while offset + 8 <= count {
            guard
                left.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    == right.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            else { return false }
            offset += 8
        }
        while offset < count {
            guard
                left.load(fromByteOffset: offset, as: UInt8.self) == right.load(fromByteOffset: offset, as: UInt8.self)
            else { return false }
            offset += 1
        }
        return true
    }

    /// The end of `literal` if it appears in `text` at `position`.
    @inline(__always)
    private static func match(
        _ literal: some Sequence<UInt8>,
        count: Int,
        in text: UnsafeBufferPointer<UInt8>,
        at position: Int
    ) -> Int? {
        guard count <= text.count - position else { return nil }
        var index = position
        for byte in literal {
            guard text[index] == byte else { return nil }
            index += 1
        }
        return index
    }

    /// The length of the UTF-8 scalar that starts at `position`, so `?` means one character and
    /// not one byte.
    @inline(__always)
    private static func scalarLength(_ text: UnsafeBufferPointer<UInt8>, at position: Int) -> Int {
        let lead = text[position]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        return min(length, text.count - position)
    }
}
