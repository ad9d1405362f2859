import Foundation
import Testing
import TandemWire

/// The serving mode's spellings are the HTTP API (`tandem_mode`, the response's `tandem.mode`) and the
/// wire's acceptance rule: they must not change.
@Suite struct ServingModeTests {
    @Test func spellingsAndErrorTextAreStable() {
        #expect(ServingMode.allCases.map(\.rawValue) == ["coupled", "exact", "centralized"])
        #expect(ServingMode.standard == .coupled)
        #expect(ServingMode.choices == "coupled, exact or centralized")
        #expect(ServingMode.invalid("tandem_mode") == "tandem_mode must be coupled, exact or centralized")
        for mode in ServingMode.allCases { #expect(ServingMode(parsing: mode.rawValue) == mode) }
        for text in ["turbo", "", "Coupled", " exact", "speculative"] { #expect(ServingMode(parsing: text) == nil) }
        #expect(VerificationMode.allCases.map(\.rawValue).sorted() == ["coupled", "exact"])
    }

    @Test func centralizedIsCoupledWithoutDrafting() {
        #expect(ServingMode.coupled.verification == .coupled)
        #expect(ServingMode.exact.verification == .exact)
        #expect(ServingMode.centralized.verification == .coupled)
        #expect(ServingMode.centralized.draftLength(requested: 5) == 0)
        #expect(ServingMode.centralized.draftLength(requested: nil) == 0)
        #expect(ServingMode.coupled.draftLength(requested: nil) == nil)
        #expect(ServingMode.exact.draftLength(requested: 3) == 3)
    }

    @Test func encodesAsItsSpelling() throws {
        let json = try JSONEncoder().encode(["mode": ServingMode.centralized, "other": .exact])
        let decoded = try JSONDecoder().decode([String: String].self, from: json)
        #expect(decoded == ["mode": "centralized", "other": "exact"])
    }
}
