import Foundation
import TestSupport
import XCTest

/// Errors about files and stores (not about the arguments) print "Error: …" and exit 1 without
/// ArgumentParser's usage block, which a `ValidationError` adds (exit 64): a missing store, an
/// adapter config that does not decode.
final class CommandErrorTests: XCTestCase {
    func testFileErrorsPrintNoUsageBlock() throws {
        let dir = tempDir("cmderr")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/adapter", withIntermediateDirectories: true)
        try #"{"task_type": "SEQ_2_SEQ_LM"}"#.write(toFile: "\(dir)/adapter/adapter_config.json", atomically: true, encoding: .utf8)
        for (args, fragment) in [(["results", "table1", "--db", "\(dir)/none.sqlite"], "\(dir)/none.sqlite: no results store"),
                                 (["export", "table1", "--db", "\(dir)/none.sqlite"], "\(dir)/none.sqlite: no results store"),
                                 (["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--task", "cb"],
                                  "\(dir)/adapter/adapter_config.json: not a PEFT adapter config (missing field 'peft_type')")] {
            let (rc, err) = try runCLIText(args, stdout: false)
            XCTAssertEqual(rc, 1, "\(args): \(err)")
            XCTAssertTrue(err.contains(fragment) && !err.contains("Usage:"), "\(args): \(err)")
        }
        // A tokenizer of another model (32,100 tokens beside tiny-random-t5's 1,302-row table):
        // refused before training, naming the tokenizer file and config.json (it failed on the
        // first id past the table, "id 17398 outside table of 1302 rows", naming neither).
        let shared = try sharedDir(), data = try sharedData()
        try FileManager.default.copyItem(atPath: "\(shared)/models/tiny-random-t5", toPath: "\(dir)/model")
        try FileManager.default.removeItem(atPath: "\(dir)/model/tokenizer.json")
        try FileManager.default.copyItem(atPath: "\(shared)/models/t5-tokenizer/tokenizer.json", toPath: "\(dir)/model/tokenizer.json")
        let (trc, terr) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--k", "8", "--max-steps", "0", "--eval-limit", "2",
                                          "--model", "\(dir)/model", "--data-dir", data], stdout: false)
        XCTAssertNotEqual(trc, 0)
        XCTAssertTrue(terr.contains("\(dir)/model/tokenizer.json: the tokenizer has 32100 tokens") && terr.contains("\(dir)/model/config.json")
                      && terr.contains("has 1302 rows"), terr)
        // `params` refuses what `train` refuses (it printed 0, or the default's count, with exit 0).
        for (args, fragment) in [(["--method", "dpt", "--r", "0"], "--r must be ≥ 1, got 0"), (["--method", "pt", "--n", "0"], "--n must be ≥ 1, got 0"),
                                 (["--method", "lora", "--targets", "zz"], "--targets zz: no linear layer of t5-base matches"),
                                 (["--method", "dept", "--n", "10"], "method dept does not read 'n'"),
                                 (["--method", "pt", "--n", "1024", "--model", "gpt2-large"], "--n 1024: the prompt rows leave no position of gpt2-large's n_positions 1024 for the input")] {
            let (prc, perr) = try runCLIText(["params"] + args, stdout: false)
            XCTAssertNotEqual(prc, 0, "\(args)")
            XCTAssertTrue(perr.contains(fragment), "\(args): \(perr)")
        }
        XCTAssertEqual(try runCLIText(["params", "--method", "pt", "--n", "1023", "--model", "gpt2-large"], stdout: true).0, 0)
        let (okrc, okOut) = try runCLIText(["params", "--method", "lora", "--targets", "c_attn,c_proj", "--model", "gpt2-large"], stdout: true)
        XCTAssertEqual(okrc, 0)
        XCTAssertTrue(okOut.contains("trainable params: 4,055,040"), okOut)  // 36 × 8·(1280+3840) + 36 × (8·(1280+1280) + 8·(5120+1280))
        // "all params" counts LoPT-2's frozen X0 (10 × 1280) with its U, V (2 · 2 · 1280) and gpt2-large's 774,030,080.
        let (l2rc, l2) = try runCLIText(["params", "--method", "lopt2", "--model", "gpt2-large", "--n", "10", "--r", "2"], stdout: true)
        XCTAssertEqual(l2rc, 0)
        XCTAssertTrue(l2.contains("trainable params: 5,120 || all params: 774,048,000"), l2)
        // A model given as a path that is not there: no hub-cache folder made of the path, no
        // download hint; an unknown optimizer lists the known ones.
        let (mrc, merr) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--model", "\(dir)/missing-model", "--data-dir", data], stdout: false)
        XCTAssertNotEqual(mrc, 0)
        XCTAssertTrue(merr.contains("\(dir)/missing-model is a path") && !merr.contains("huggingface-cli") && !merr.contains("models--"), merr)
        let (orc, oerr) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--optimizer", "sgd"], stdout: false)
        XCTAssertNotEqual(orc, 0)
        XCTAssertTrue(oerr.contains("unknown optimizer 'sgd' (adamw-torch, adamw-hf, adafactor)"), oerr)
        // A sweep (and its dry run, and `shard`) whose GPT-2 runs cannot fit n_positions is refused
        // before planning, naming the cell and config.json (each worker failed them one by one).
        /// A smoke spec of one PT variant of prompt length `n` on one task and one model column.
        func ptSpec(_ name: String, paper: String, n: Int, task: String, model: String, backbone: String) throws {
            try """
            spec: \(name)
            paper: \(paper)
            methods:
              - {name: pt, method: pt, n: \(n)}
            tasks: [\(task)]
            models: [\(model)]
            seeds: [1]
            k: [8]
            profiles:
              smoke: {models: {\(model): "\(backbone)"}, train: {epochs: 1, eval_limit: 4}}
            """.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
        }
        try ptSpec("gptfit", paper: "lopt", n: 450, task: "sst2", model: "gpt2", backbone: "embedded:gpt2-tiny")
        for extra in [["--dry-run"], []] {
            let (src, serr) = try runCLIText(["sweep", "\(dir)/gptfit.yaml", "--db", "\(dir)/fit.sqlite", "--data-dir", data, "--checkpoints", "\(dir)/ck"] + extra, stdout: false)
            XCTAssertEqual(src, 1, serr)
            XCTAssertTrue(serr.contains("1 cell cannot fit, nothing planned") && serr.contains("pt|sst2|gpt2|k8: ") && serr.contains("config.json: n_positions is 512, while n 450"), serr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/fit.sqlite"))
        }
        let (shrc, sherr) = try runCLIText(["shard", "\(dir)/gptfit.yaml", "--shards", "1", "--dir", "\(dir)/shards", "--data-dir", data], stdout: false)
        XCTAssertNotEqual(shrc, 0)
        XCTAssertTrue(sherr.contains("cannot fit") && !FileManager.default.fileExists(atPath: "\(dir)/shards/shard-0.sqlite"), sherr)
        // Memory is the workers' machines' to judge: `shard` checks n_positions only, while
        // `sweep` here refuses a T5 prompt whose training batch's scores exceed this machine.
        try ptSpec("huge", paper: "dpt", n: 100_000, task: "cb", model: "t5-small", backbone: "embedded:t5-tiny")
        let (hs, hserr) = try runCLIText(["sweep", "\(dir)/huge.yaml", "--db", "\(dir)/huge.sqlite", "--data-dir", data, "--dry-run"], stdout: false)
        XCTAssertEqual(hs, 1, hserr)
        XCTAssertTrue(hserr.contains("cannot fit") && hserr.contains("of memory this process may use"), hserr)
        let (hsh, hsherr) = try runCLIText(["shard", "\(dir)/huge.yaml", "--shards", "1", "--dir", "\(dir)/huge-shards", "--data-dir", data], stdout: false)
        XCTAssertEqual(hsh, 0, hsherr)
        // An argument's own error keeps the usage block.
        let (rc, err) = try runCLIText(["compare", "--method", "pt", "--against", "nowhere"], stdout: false)
        XCTAssertEqual(rc, 64, err)
        // The subcommand's own usage (ArgumentParser showed the root's, "promptrepro <subcommand>").
        XCTAssertTrue(err.contains("--against must be stored or published") && err.contains("Usage: promptrepro compare --method")
                      && err.contains("See 'promptrepro compare --help'"), err)
    }
    /// A negative number written as its own word ("--workers -1") reached ArgumentParser as a flag
    /// and read "Missing value for '--workers'": every numeric option now takes its next word, so
    /// the option's own range check speaks.
    func testNegativeNumbersReachTheirOwnChecks() throws {
        for (args, fragment) in [(["sweep", "table1", "--dry-run", "--workers", "-1"], "'-1' is not a positive integer"),
                                 (["sweep", "table1", "--dry-run", "--threads", "-2"], "'-2' is not a positive integer"),
                                 (["train", "--method", "pt", "--task", "cb", "--lr", "-0.1"], "--lr must be a finite number ≥ 0, got -0.1"),
                                 (["train", "--method", "pt", "--task", "cb", "--epochs", "-2"], "--epochs must be ≥ 1, got -2"),
                                 (["train", "--method", "pt", "--task", "cb", "--seed", "-1"], "--seed must be ≥ 0, got -1"),
                                 (["eval", "--model", "embedded:t5-tiny", "--task", "cb", "--decode-max-tokens", "-3"],
                                  "The value '-3' is invalid for '--decode-max-tokens"),
                                 (["params", "--method", "dpt", "--r", "-1"], "--r must be ≥ 1, got -1"),
                                 // Options declared over two lines, and the shared --threads of train/eval/forward.
                                 (["train", "--method", "pt", "--task", "cb", "--threads", "-1"], "'-1' is not"),
                                 (["eval", "--model", "embedded:t5-tiny", "--task", "cb", "--max-source-length", "-5"], "Error: ")] {
            let (rc, err) = try runCLIText(args, stdout: false)
            XCTAssertNotEqual(rc, 0, "\(args)")
            XCTAssertTrue(err.contains(fragment) && !err.contains("Missing value"), "\(args): \(err)")
        }
    }
    /// An option given twice keeps its last value (ArgumentParser's rule), now with a warning: a
    /// script's default and a later override trained at the override without a word.
    /// `promptrepro --help` names every PROMPTREPRO_ variable the sources read (docs/cli.md says
    /// it lists them; PROMPTREPRO_ROOT and PROMPTREPRO_SHARED were missing), test-only ones aside,
    /// and no line of it is wrapped by ArgumentParser (it broke lines longer than 80 columns,
    /// leaving a word at column 0).
    func testHelpListsEveryEnvironmentVariable() throws {
        let (rc, help) = try runCLIText(["--help"], stdout: true)
        XCTAssertEqual(rc, 0, help)
        var names = Set<String>()
        let sources = URL(fileURLWithPath: "\(repoRoot)/Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" } ?? []
        XCTAssertGreaterThan(files.count, 50)
        let pattern = try NSRegularExpression(pattern: #""(PROMPTREPRO_[A-Z0-9_]+)""#)
        for f in files {
            let text = try String(contentsOf: f, encoding: .utf8)
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        names = names.filter { !$0.hasPrefix("PROMPTREPRO_TEST_") }
        XCTAssertTrue(names.contains("PROMPTREPRO_THREADS") && names.count >= 12, names.description)
        for name in names.sorted() { XCTAssertTrue(help.contains(name), "\(name) is read but not in --help") }
        // Every line of the block as written in the source (a reflowed line leaves a fragment
        // that is no source line, such as "process" or "calibration").
        let source = Set(try String(contentsOfFile: "\(repoRoot)/Sources/PromptReproCLI/PromptRepro.swift", encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        let block = help.components(separatedBy: "USAGE:")[0].components(separatedBy: "Environment")
        XCTAssertEqual(block.count, 2, help)
        for line in ("Environment" + block[1]).split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            XCTAssertTrue(source.contains(line.trimmingCharacters(in: .whitespaces)), "a reflowed help line: '\(line)'")
        }
    }

    func testRepeatedOptionsAreNamed() throws {
        let (rc, err) = try runCLIText(["params", "--method", "dpt", "--r", "4", "--n", "10", "--r=8"], stdout: false)
        XCTAssertEqual(rc, 0, err)
        XCTAssertTrue(err.contains("warning: --r given 2 times; the last one is used") && !err.contains("--n given") && !err.contains("--method given"), err)
        let (_, out) = try runCLIText(["params", "--method", "dpt", "--r", "4", "--n", "10", "--r=8"], stdout: true)
        XCTAssertTrue(out.contains("trainable params: 6,224 "), out)  // DPT n = 10, r = 8 on t5-base: 10·8 + 8·768
    }
    /// The embedded backbones' default cache is under $HOME (Foundation's home directory is the
    /// password database's: a job with HOME elsewhere, or a user whose passwd home is /nonexistent,
    /// failed with "/nonexistent: You don't have permission").
    func testTheDefaultCacheFollowsHOME() throws {
        let dir = tempDir("home")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (rc, out) = try runCLIText(["info", "--model", "embedded:gpt2-tiny"], stdout: true, cwd: dir, env: ["HOME": dir, "PROMPTREPRO_CACHE": ""])
        XCTAssertEqual(rc, 0, out)
        XCTAssertTrue(out.contains("\(dir)/.cache/promptrepro/embedded/gpt2-tiny-v1".replacingOccurrences(of: "/", with: "\\/")), out)
    }
}
