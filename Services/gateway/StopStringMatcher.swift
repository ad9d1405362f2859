/// Finds a request's stop strings in generated text as it streams, and decides what may be released.
///
/// Text arrives in pieces (one token's worth at a time). A stop string can span pieces, so the
/// matcher holds back the longest suffix that could still become the start of a stop string and
/// releases the rest. Once a stop string is complete, the text before it is released and everything
/// from the stop string on is dropped; later input is ignored.
///
/// Matching is on UTF-8 bytes, not on `Character`s: a stop string must be found wherever its bytes
/// occur (as vLLM and llama.cpp do on code points), even when grapheme clustering would glue its first
/// character to the one before (`"e"` followed by a combining accent). Both the text and the stop
/// strings are valid UTF-8, so a match or a held-back suffix always starts on a scalar boundary and
/// every released piece is valid UTF-8.
///
/// When several stop strings occur, the one that *ends* first in the text wins (on a tie, the longer
/// one, which starts first). That is what generating byte by byte and checking after each byte would
/// give, so the result depends only on the text, never on how it was split into tokens or pieces.
struct StopStringMatcher: Sendable {
    /// The stop strings' bytes (empty strings are ignored), longest first for tie-breaking.
    let stops: [[UInt8]]
    /// Bytes received but not yet released: a possible beginning of a stop string.
    private var pending: [UInt8] = []
    /// Whether a stop string was found; from then on nothing more is released.
    private(set) var stopped = false

    init(stops: [String]) {
        self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
    }

    /// Bytes held back so far (a suffix that may begin a stop string).
    var heldBackByteCount: Int { pending.count }

    /// Adds newly generated text. Returns the text that can be released now and whether a stop string
    /// completed in it (then the released text ends right before the stop string).
    mutating func append(_ text: String) -> (text: String, stopped: Bool) {
        guard !stopped else { return ("", true) }
        if text.isEmpty { return ("", false) }
        pending.append(contentsOf: text.utf8)
        if stops.isEmpty {
            defer { pending.removeAll(keepingCapacity: true) }
            return (String(decoding: pending, as: UTF8.self), false)
        }
        if let start = firstMatchStart() {
            stopped = true
            let released = String(decoding: pending[..<start], as: UTF8.self)
            pending.removeAll()
            return (released, true)
        }
        let keep = heldSuffixLength()
        let cut = pending.count - keep
        let released = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return (released, false)
    }

    /// The generation ended without a stop string: releases what was held back (nothing once stopped).
    mutating func finish() -> String {
        defer { pending.removeAll() }
        return stopped ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Start of the stop string occurrence that ends first in `pending` (ties: the longest), if any.
    /// No stop string lies wholly inside what was held back before, so scanning all of `pending` finds
    /// only occurrences completed by the new text.
    private func firstMatchStart() -> Int? {
        let n = pending.count
        var end = 1
        while end <= n {
            for stop in stops where stop.count <= end {
                let start = end - stop.count
                if pending[start] == stop[0], pending[start..<end].elementsEqual(stop) { return start }
            }
            end += 1
        }
        return nil
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop string.
    private func heldSuffixLength() -> Int {
        var best = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > best {
                if pending[(pending.count - length)...].elementsEqual(stop[..<length]) {
                    best = length
                    break
                }
                length -= 1
            }
        }
        return best
    }
}
