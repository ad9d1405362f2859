@testable import Gateway
import Testing

/// Stop strings cut the released text right before their first occurrence, whatever the pieces.
struct StopStringMatcherTests {
    /// Feeds `pieces` and returns the concatenated released text, whether it stopped, and after which piece.
    func run(_ stops: [String], _ pieces: [String]) -> (text: String, stopped: Bool, stoppedAt: Int?) {
        var matcher = StopStringMatcher(stops: stops)
        var text = ""
        for (i, piece) in pieces.enumerated() {
            let r = matcher.append(piece)
            text += r.text
            if r.stopped { return (text + matcher.finish(), true, i) }
        }
        return (text + matcher.finish(), false, nil)
    }

    @Test func withoutAStopEverythingIsReleased() {
        #expect(run(["STOP"], ["Hello", " world", "!"]) == ("Hello world!", false, nil))
        #expect(run([], ["a", "b"]) == ("ab", false, nil))
        // Empty stop strings are ignored rather than matching everywhere.
        #expect(run([""], ["abc"]) == ("abc", false, nil))
    }

    @Test func aStopStringSpanningPiecesIsCutAndNothingAfterItIsReleased() {
        var m = StopStringMatcher(stops: ["world"])
        #expect(m.append("Hello wo") == ("Hello ", false))  // "wo" may begin the stop string: held back
        #expect(m.heldBackByteCount == 2)
        #expect(m.append("rl") == ("", false))
        #expect(m.append("d! and more") == ("", true))
        #expect(m.stopped)
        #expect(m.append("later text") == ("", true))
        #expect(m.finish() == "")
        #expect(run(["STOP"], ["Hello S", "T", "O", "P and more", "tail"]) == ("Hello ", true, 3))
    }

    @Test func aFalseStartIsReleasedOnceItCannotBeAStopString() {
        var m = StopStringMatcher(stops: ["world"])
        #expect(m.append("a wo") == ("a ", false))
        #expect(m.append("nder") == ("wonder", false))
        #expect(run(["world"], ["a wor", "m"]) == ("a worm", false, nil))
        // Held back at the end of the generation without completing: released by finish.
        #expect(run(["world"], ["say wor"]) == ("say wor", false, nil))
    }

    @Test func aStopAtTheVeryStartReleasesNothing() {
        #expect(run(["STOP"], ["STOP now"]) == ("", true, 0))
        #expect(run(["STOP"], ["S", "TOP"]) == ("", true, 1))
        #expect(run(["\n"], ["\nfoo"]) == ("", true, 0))
    }

    @Test func withSeveralStopsTheFirstToEndWins() {
        #expect(run(["END", "\n\n"], ["a\n\nb END"]) == ("a", true, 0))
        #expect(run(["END", "\n\n"], ["a END\n\n"]) == ("a ", true, 0))
        // "c" is complete before "abcd" is: the text is cut before "c" whether or not the pieces split there.
        #expect(run(["abcd", "c"], ["xxabcd"]) == ("xxab", true, 0))
        #expect(run(["abcd", "c"], ["xxab", "cd"]) == ("xxab", true, 1))
        // Ending together: the longer one starts first and wins.
        #expect(run(["b", "ab"], ["xab"]) == ("x", true, 0))
        #expect(run(["ab", "b"], ["xab"]) == ("x", true, 0))
    }

    @Test func multiByteTextIsMatchedOnBytesAndReleasedAsWholeCharacters() {
        #expect(run(["日本語"], ["今日は日本", "語です"]) == ("今日は", true, 1))
        var m = StopStringMatcher(stops: ["日本語"])
        #expect(m.append("今日は日本") == ("今日は", false))
        #expect(m.heldBackByteCount == 6)
        #expect(run(["😀!"], ["ok 😀", "?", " 😀", "!!"]) == ("ok 😀? ", true, 3))
        #expect(run(["é"], ["café au lait"]) == ("caf", true, 0))
        // A combining mark is found although it forms one Character with the letter before it.
        #expect(run(["\u{301}"], ["cafe\u{301}!"]) == ("cafe", true, 0))
        #expect(run(["😀"], ["a😀"]).text.unicodeScalars.elementsEqual("a".unicodeScalars))
    }

    /// The released text depends only on the whole text, never on how it was split into pieces.
    @Test func everySplitOfTheTextGivesTheSameResult() {
        let text = "héllo wörld 😀 stop here, STOP there"
        let scalars = Array(text.unicodeScalars)
        for stops in [["STOP"], ["wörld"], ["😀 s", "here"], ["lo w", "ö"], ["nowhere"]] {
            let whole = run(stops, [text])
            for a in 0...scalars.count {
                for b in a...scalars.count where (a + b) % 3 == 0 {
                    let pieces = [scalars[..<a], scalars[a..<b], scalars[b...]].map { s in
                        var v = String.UnicodeScalarView()
                        v.append(contentsOf: s)
                        return String(v)
                    }
                    let split = run(stops, pieces)
                    #expect(split.text == whole.text && split.stopped == whole.stopped, "\(stops) split at \(a), \(b)")
                }
            }
        }
        #expect(run(["wörld"], [text]).text == "héllo ")
        #expect(run(["nowhere"], [text]).text == text)
    }
}
