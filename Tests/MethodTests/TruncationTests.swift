import Foundation
import Methods
import Models
import Tasks
import TestSupport
@testable import Training
import XCTest

/// GPT-2 scores the label word right after the template's last text (" It was about"), so a source
/// longer than `max_source_length` must lose the end of its input text, never that template text:
/// OpenPrompt's tokenizer wrappers (PEZ and LoPT build on them) shorten only the input text parts.
/// Cutting the whole string, as DPT's T5 sources are cut, scored AG News test row 5181 (262 GPT-2
/// tokens against the limit of 256) after a token in the middle of its text.
final class TruncationTests: XCTestCase {
    func testTemplateTailIsTheTextAfterTheLastField() throws {
        XCTAssertEqual(try TaskRegistry.definition("agnews").template(.lopt).sourceTail, " It was about")
        XCTAssertEqual(try TaskRegistry.definition("sst2").template(.lopt).sourceTail, ". It was")
        XCTAssertEqual(TemplateSpec(source: "{a} mid {b}", target: "{label_word}").sourceTail, "")
        XCTAssertEqual(TemplateSpec(source: "no fields", target: "x").sourceTail, "no fields")
        XCTAssertEqual(TemplateSpec(source: "{a} tail {with brace", target: "x").sourceTail, " tail {with brace")
    }

    func testLongGPT2SourcesKeepTheTemplateTail() throws {
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer")
        let tail = " It was about"
        let tailIds = tok.encode(tail)
        XCTAssertEqual(tailIds.count, 3)  // " It", " was", " about"
        let text = Array(repeating: "Stocks rallied on Friday after the report.", count: 40).joined(separator: " ")
        let head = tok.encode(text)
        XCTAssertGreaterThan(head.count, 256)
        let got = truncate(source: text + tail, tail: tail, tok: tok, max: 256)
        XCTAssertEqual(got.count, 256)
        XCTAssertEqual(Array(got.suffix(3)), tailIds, "the template's ending is kept")
        XCTAssertEqual(Array(got.prefix(253)), Array(head.prefix(253)), "the text loses its end")
        // The whole-string cut, which DPT's T5 sources keep: the ending is gone.
        XCTAssertNotEqual(Array(truncate(tok.encode(text + tail), 256, eos: tok.eosId).suffix(3)), tailIds)

        // A source that fits keeps the ids of its whole text.
        let short = "Stocks rallied." + tail
        XCTAssertEqual(truncate(source: short, tail: tail, tok: tok, max: 256), tok.encode(short))
        // No tail, or a tail as long as the limit: the plain cut.
        XCTAssertEqual(truncate(source: text, tail: "", tok: tok, max: 20), Array(head.prefix(20)))
        XCTAssertEqual(truncate(source: text + tail, tail: tail, tok: tok, max: 3), Array(tok.encode(text + tail).prefix(3)))
    }

    /// The real case: AG News test row 5181 is 262 tokens in its template; kept whole up to the
    /// row's last text token, with the template's three tokens last.
    func testAGNewsRowLongerThanTheLimit() throws {
        let def = try TaskRegistry.definition("agnews")
        let data = try DataLoader.load(def, split: .validation, dataDir: try sharedData())
        let ex = try Templates.examples(data, set: .lopt, training: false)
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer")
        let long = ex.filter { tok.encode($0.source).count > 256 }
        XCTAssertFalse(long.isEmpty, "AG News's test split has rows longer than 256 GPT-2 tokens")
        for e in long {
            let ids = truncate(source: e.source, tail: " It was about", tok: tok, max: 256)
            XCTAssertEqual(ids.count, 256)
            XCTAssertEqual(tok.decode(Array(ids.suffix(3)), skipSpecialTokens: true), " It was about", "row \(e.row)")
        }
    }

    /// A text ending in a "prepend" scalar (U+0600) joins the template's "." into one Swift
    /// Character: the suffix test on Characters failed and the whole string was cut, template and
    /// all. On scalars the template is kept.
    func testATextEndingInAPrependScalarKeepsTheTemplate() throws {
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer")
        let tail = ". It was", tailIds = tok.encode(tail)
        let text = Array(repeating: "good", count: 200).joined(separator: " ") + " \u{0600}"
        XCTAssertFalse((text + tail).hasSuffix(tail), "Swift's Character suffix test misses it")
        let got = truncate(source: text + tail, tail: tail, tok: tok, max: 128)
        XCTAssertEqual(got.count, 128)
        XCTAssertEqual(Array(got.suffix(tailIds.count)), tailIds)
    }

    /// GLUE's SST-2 sentences end with a space, which HF's glue/sst2 (PEZ) keeps: the source of dev
    /// row 1 in the LoPT template is "it 's a charming and often affecting journey . . It was", ids
    /// from Hugging Face `tokenizers` 0.23.3 (the stripped sentence gave "Ġ.." (11485) for the two dots).
    func testSST2SentencesKeepTheirTrailingSpace() throws {
        let def = try TaskRegistry.definition("sst2")
        let data = try DataLoader.load(def, split: .validation, dataDir: try sharedData())
        XCTAssertEqual(data.rows[0].fields["sentence"] as? String, "it 's a charming and often affecting journey . ")
        let ex = try Templates.examples(data, set: .lopt, training: false)
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer")
        XCTAssertEqual(tok.encode(ex[0].source), [270, 705, 82, 257, 23332, 290, 1690, 13891, 7002, 764, 764, 632, 373])
    }

    /// A limit that cannot hold the template's text after the input and one input token is refused
    /// before training (the plain cut dropped " It was about" and AG News scored 0.00), and a set
    /// without label words names first the sets with a cue before the word.
    func testALimitThatCannotHoldTheTailIsRefused() throws {
        var c = try TrainConfig.preset("lopt-paper", method: try MethodConfig.defaults("pt"), task: "agnews", model: "embedded:gpt2-tiny", k: 8, seed: 1)
        c.maxSteps = 0; c.evalLimit = 2
        c.maxSourceLength = 13  // " It was about" is 13 bytes on the byte-level tokenizer
        let t = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests")
        t.lockPath = "\(repoRoot)/Baselines/data.lock"
        XCTAssertThrowsError(try t.run()) { e in
            XCTAssertTrue("\(e)".contains("max_source_length 13 cannot hold the template's text after the input (' It was about', 13 tokens)") && "\(e)".contains("use at least 14"), "\(e)")
        }
        c.maxSourceLength = 14
        let ok = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests")
        ok.lockPath = "\(repoRoot)/Baselines/data.lock"
        XCTAssertEqual(try ok.run().status, .done)
        c.templates = .dpt
        let none = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests")
        XCTAssertThrowsError(try none.run()) { e in
            XCTAssertTrue("\(e)".contains("(sets with label words: lopt, respt (no cue after the input))"), "\(e)")
        }
    }
}
