import Support
import Tasks
import XCTest

/// `LabelReachability`: hand-worked cases of the rule that ends a greedy decode once its text can
/// no longer be read back as a label (METHODS §4.3/§4.4: a stripped prediction equal to no label is
/// invalid, whatever follows).
final class LabelReachabilityTests: XCTestCase {
    let cb = LabelReachability(labels: ["entailment", "contradiction", "neutral"])

    func testPrefixesOfALabelStayReachable() {
        for t in ["", " ", "e", "ent", "entailmen", "contra", "  neut", "entailment"] {
            XCTAssertTrue(cb.canStillNameALabel(t), t.debugDescription)
        }
        // The label itself stays open: </s>, spaces or nothing may follow.
        XCTAssertTrue(cb.canStillNameALabel("neutral"))
    }

    func testTextThatNoLabelStartsWithIsDecided() {
        // The last character is not trusted (it may still change), so the decision needs one more.
        XCTAssertTrue(cb.canStillNameALabel("x"))
        XCTAssertFalse(cb.canStillNameALabel("xy"))
        XCTAssertFalse(cb.canStillNameALabel("entailment.."))
        XCTAssertFalse(cb.canStillNameALabel("neutral neutral"))
        XCTAssertFalse(cb.canStillNameALabel("0 0 0"))   // METHODS §4.3: "0 0 0…" must not become "0"
        XCTAssertTrue(LabelReachability(labels: ["0", "1"]).canStillNameALabel("0 "))
        XCTAssertTrue(LabelReachability(labels: ["0", "1"]).canStillNameALabel("0 0"))   // "0 " + a mark still to come
        XCTAssertFalse(LabelReachability(labels: ["0", "1"]).canStillNameALabel("0 0 "))
    }

    /// transformers' `clean_up_tokenization_spaces` deletes the space of " n't", " ." …, so "do n"
    /// can still become "don't"; spaces inside labels are ignored the same way.
    func testSpacesTheDecoderMayStillDeleteAreIgnored() {
        let r = LabelReachability(labels: ["don't know", "not entailment"])
        XCTAssertTrue(r.canStillNameALabel("do n"))
        XCTAssertTrue(r.canStillNameALabel("don 't kn"))
        XCTAssertTrue(r.canStillNameALabel("not ent"))
        XCTAssertTrue(r.canStillNameALabel("notent"))
        XCTAssertFalse(r.canStillNameALabel("not ab"))
    }

    /// Swift `==` (how `Metrics.rows` reads a label back) is canonical equivalence: a decomposed
    /// "é" names the precomposed label, and a base letter may still get its combining mark.
    func testCanonicalEquivalence() {
        let r = LabelReachability(labels: ["caf\u{E9}"])
        XCTAssertEqual("cafe\u{301}", "caf\u{E9}")
        XCTAssertTrue(r.canStillNameALabel("cafe"))
        XCTAssertTrue(r.canStillNameALabel("cafe\u{301}"))
        XCTAssertFalse(r.canStillNameALabel("cafex!"))
        XCTAssertTrue(LabelReachability(labels: ["cafe\u{301}"]).canStillNameALabel("caf\u{E9}"))
    }
}
