import Foundation
import Harness
import Reports
import Store
import TestSupport
import Training
import XCTest

/// Protocol variants through specs, the store, sweeps and results (issue #20).
final class ProtocolVariantHarnessTests: XCTestCase {
    func spec(_ text: String, _ dir: String) throws -> ExperimentSpec {
        try text.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        return try ExperimentSpec.load("\(dir)/s.yaml")
    }

    let crossed = """
    spec: crossed
    paper: dpt
    methods: [{name: pt, method: pt, n: 8}]
    tasks: [cb]
    models: [t5-small]
    seeds: [1, 2]
    sample_seeds: [1, 2, 3]
    k: [8]
    profiles:
      smoke:
        models: {t5-small: "embedded:t5-tiny"}
        train: {epochs: 2, batch_size: 4, eval_limit: 12, eval_batch_size: 12, decode_max_tokens: 3, max_source_length: 96, eval_mode: rank}
    """

    /// `sample_seeds` × `seeds` expands to every pair in one cell; the store keeps all six (the
    /// current-run key includes the sample seed) and a second insert adds none.
    func testCrossedSeedsExpandAndStore() throws {
        let dir = tempDir("cross")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runs = try spec(crossed, dir).expand(profile: "smoke")
        XCTAssertEqual(runs.count, 6)
        XCTAssertEqual(Set(runs.map(\.cell)).count, 1)
        XCTAssertEqual(Set(runs.map(\.replicate)).count, 6)
        XCTAssertEqual(runs.map(\.config.sampleSeed), [1, 1, 2, 2, 3, 3])
        let store = try ResultsStore(path: "\(dir)/s.sqlite")
        XCTAssertEqual(try store.insertPending(runs), 6)
        XCTAssertEqual(try store.insertPending(runs), 0)
        // A spec without sample_seeds keeps NULL sample seeds and the papers' configs.
        let plain = try spec(crossed.replacingOccurrences(of: "sample_seeds: [1, 2, 3]\n", with: ""), dir).expand(profile: "smoke")
        XCTAssertEqual(plain.map(\.sampleSeed), [nil, nil])
        XCTAssertFalse(plain[0].config.json.contains("sample_seed"))
    }

    /// Hand-worked one-way random-effects decomposition: samples {1: [1, 3], 2: [5, 7]}: MSB = 16,
    /// MSW = 2, n0 = 2 → σ²_between = 7, σ²_within = 2. Unbalanced: {1: [2, 4, 6], 2: [10]}:
    /// grand mean 5.5, SSB = 3·1.5² + 4.5² = 27, MSB = 27, SSW = 8, MSW = 4, n0 = (4 − 10/4) = 1.5
    /// → σ²_between = 46/3. One sample only, or one run per sample: nil.
    func testVarianceComponentsHandWorked() throws {
        let v = try XCTUnwrap(VarianceComponents([(1, 1), (1, 3), (2, 5), (2, 7)]))
        XCTAssertEqual(v.between, 7, accuracy: 1e-12)
        XCTAssertEqual(v.within, 2, accuracy: 1e-12)
        XCTAssertEqual(v.sampleShare!, 7.0 / 9, accuracy: 1e-12)
        let u = try XCTUnwrap(VarianceComponents([(1, 2), (1, 4), (1, 6), (2, 10)]))
        XCTAssertEqual(u.within, 4, accuracy: 1e-12)
        XCTAssertEqual(u.between, 46.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(VarianceComponents([(1, 2), (1, 4)])?.between, nil)
        XCTAssertNil(VarianceComponents([(1, 2), (2, 4)]))
        // Between-sample spread smaller than the seed noise: truncated at 0.
        XCTAssertEqual(VarianceComponents([(1, 0), (1, 10), (2, 1), (2, 9)])?.between, 0)
    }

    /// A search spec expands to its grid points only (on the search seeds, dev selection); once
    /// they have finished, the point with the best mean dev score runs on every seed under the
    /// method's name. Selecting a search on the reported split is refused.
    func testSearchExpansionAndChoice() throws {
        let dir = tempDir("search")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
        spec: searchy
        paper: dpt
        methods:
          - {name: pt, method: pt, search: {grid: {lr: [0.3, 0.03], n: [4, 8]}, select_on: train-dev}}
        tasks: [cb]
        models: [t5-small]
        seeds: [1, 2, 3]
        k: [8]
        profiles:
          smoke: {models: {t5-small: "embedded:t5-tiny"}, train: {epochs: 1}}
        """
        let s = try spec(text, dir)
        XCTAssertTrue(s.hasSearch)
        let first = try s.expand(profile: "smoke", choose: { _, _, _, _ in nil })
        XCTAssertEqual(first.map(\.variant), ["pt@lr=0.3,n=4", "pt@lr=0.3,n=8", "pt@lr=0.03,n=4", "pt@lr=0.03,n=8"])
        XCTAssertTrue(first.allSatisfy { $0.seed == 1 && $0.config.selectOn == .trainDev })
        XCTAssertEqual(first.map(\.config.method.n), [4, 8, 4, 8])
        // The store's choice: mean selection_score per point; a diverged run counts as −∞.
        let store = try ResultsStore(path: "\(dir)/s.sqlite")
        try store.insertPending(first)
        let scores: [String: (RunStatus, Double)] = ["pt@lr=0.3,n=4": (.done, 40), "pt@lr=0.3,n=8": (.diverged, 99),
                                                     "pt@lr=0.03,n=4": (.done, 55), "pt@lr=0.03,n=8": (.done, 55)]
        XCTAssertNil(try store.searchChoice(spec: s, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8), "unfinished")
        while let claimed = try store.claim(worker: "t", pid: getpid()) {
            let (status, score) = scores[claimed.spec.variant]!
            var r = TrainResult(config: claimed.spec.config, status: status, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 1],
                                last: [:], history: [], trainableParams: 1, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil,
                                smoke: true, predictions: nil)
            r.extras = ["selection_score": score]
            try store.complete(claimed.id, result: r)
        }
        let chosen = try store.searchChoice(spec: s, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8)
        XCTAssertEqual(chosen, "pt@lr=0.03,n=4", "ties go to the first point in grid order; the diverged point is never chosen")
        let final = try s.expand(profile: "smoke", choose: store.searchChoice(spec: s, profile: "smoke"))
        let finals = final.filter { $0.variant == "pt" }
        XCTAssertEqual(finals.map(\.seed), [1, 2, 3])
        XCTAssertTrue(finals.allSatisfy { $0.config.lr == 0.03 && $0.config.method.n == 4 && $0.config.selectOn == .trainDev })
        XCTAssertEqual(finals[0].cell, "pt|cb|t5-small|k8")
        let sums = try store.searchSummaries(s, profile: "smoke")
        XCTAssertEqual(sums.count, 1)
        XCTAssertEqual(sums[0].runs, 4)
        XCTAssertEqual(sums[0].chosen, "pt@lr=0.03,n=4")
        // The spec edited since (batch size 4 → 2 for every point): the stored search runs are
        // not the ones it plans, so nothing is chosen until the new search has run (the old
        // choice stood, and the final runs were planned and trained from it).
        let edited = try spec(text.replacingOccurrences(of: "train: {epochs: 1}", with: "train: {epochs: 1, batch_size: 2}"), dir)
        XCTAssertNil(try store.searchChoice(spec: edited, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8))
        XCTAssertTrue(try edited.expand(profile: "smoke", choose: store.searchChoice(spec: edited, profile: "smoke")).allSatisfy { $0.variant != "pt" })
        // A search seed added: its runs must finish first too.
        let moreSeeds = try spec(text.replacingOccurrences(of: "select_on: train-dev}", with: "select_on: train-dev, seeds: [1, 2]}"), dir)
        XCTAssertNil(try store.searchChoice(spec: moreSeeds, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8))
        XCTAssertThrowsError(try spec(text.replacingOccurrences(of: "select_on: train-dev", with: "select_on: validation"), dir)) {
            XCTAssertTrue("\($0)".contains("reported"), "\($0)")
        }
        XCTAssertThrowsError(try spec(text.replacingOccurrences(of: "lr: [0.3, 0.03]", with: "lrr: [0.3]"), dir)) {
            XCTAssertTrue("\($0)".contains("unknown key 'lrr'"), "\($0)")
        }
        // A failed run (an error a sweep retries) leaves the search open: as −∞ it let the search
        // choose, and the retried run could change the choice after the final runs were planned.
        try store.db.query("UPDATE runs SET status='failed' WHERE variant='pt@lr=0.03,n=8'")
        XCTAssertNil(try store.searchChoice(spec: s, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8))
        // Every point diverged: nothing is chosen (the first point was, and ran on every seed).
        try store.db.query("UPDATE runs SET status='diverged' WHERE variant LIKE 'pt@%'")
        XCTAssertNil(try store.searchChoice(spec: s, profile: "smoke")(first.map(\.variant), "cb", "t5-small", 8))
        XCTAssertTrue(ResultsExport.searchMarkdown(try store.searchSummaries(s, profile: "smoke")).contains("| none: every point diverged |"))
    }

    /// A crossed sweep end to end: 6 runs, `results` prints the variant label and the variance
    /// components, the JSON export carries both, and a rerun of the sweep trains nothing.
    func testCrossedSweepResults() throws {
        let data = try sharedData()
        let dir = tempDir("crossweep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try crossed.write(toFile: "\(dir)/crossed.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        let args = ["sweep", "\(dir)/crossed.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"]
        XCTAssertEqual(try runCLI(args).terminationStatus, 0)
        let (st, md) = try runStdout(["results", "crossed", "--profile", "smoke", "--db", db])
        XCTAssertEqual(st, 0)
        XCTAssertTrue(md.contains("eval: rank; sample seeds crossed with seeds"), md)
        XCTAssertTrue(md.contains("Variance components") && md.contains("| pt\\|cb\\|t5-small\\|k8 | accuracy | 3 | 6 |"), md)
        let (_, json) = try runStdout(["results", "crossed", "--profile", "smoke", "--db", db, "--format", "json"])
        XCTAssertTrue(json.contains("\"variance_components\"") && json.contains("\"sample_seeds\""), json)
        let store = try ResultsStore(path: db)
        XCTAssertEqual(try store.counts(spec: "crossed", profile: "smoke")["done"], 6)
        let ids = try store.db.query("SELECT id FROM runs ORDER BY id").map { $0["id"]!.int! }
        XCTAssertEqual(try runCLI(args).terminationStatus, 0)
        XCTAssertEqual(try store.db.query("SELECT id FROM runs ORDER BY id").map { $0["id"]!.int! }, ids)
    }

    /// A one-task smoke spec of `methods` (YAML flow entries) for the search tests: CB, k 8, seeds
    /// 1 and 2, rank classification, a dev split of 8 rows.
    func searchSpec(_ name: String, methods: [String]) -> String {
        smokeSpec(name, methods: methods,
                  train: "{epochs: 2, batch_size: 4, eval_limit: 12, eval_batch_size: 12, max_source_length: 96, eval_mode: rank, k_dev: 8}")
    }

    /// One `sweep` command runs a search in two phases: the grid points, then the chosen point on
    /// every seed; its log names the choice and the cost, and `results` lists the search.
    func testSearchSweepRunsBothPhases() throws {
        let data = try sharedData()
        let dir = tempDir("searchsweep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try searchSpec("searchy", methods: ["{name: pt, method: pt, n: 8, search: {grid: {lr: [0.3, 0.003]}, select_on: train-dev}}"])
            .write(toFile: "\(dir)/searchy.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        let (st, log) = try runCapture(["sweep", "\(dir)/searchy.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                        "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(st, 0, log)
        XCTAssertTrue(log.contains("search pt cb/t5-small: chose pt@lr="), log)
        let store = try ResultsStore(path: db)
        let rows = try store.db.query("SELECT variant, seed, status FROM runs ORDER BY id")
        XCTAssertEqual(rows.map { $0["variant"]!.text! }, ["pt@lr=0.3", "pt@lr=0.003", "pt", "pt"])
        XCTAssertEqual(rows.map { $0["status"]!.text! }, ["done", "done", "done", "done"])
        let (_, md) = try runStdout(["results", "\(dir)/searchy.yaml", "--profile", "smoke", "--db", db])
        XCTAssertTrue(md.contains("Hyper-parameter search") && md.contains("CPU-hours"), md)
        XCTAssertFalse(md.contains("| 0.0000 |"), "a smoke search's CPU-hours print their digits: \(md)")
        // A table states the search's choice from the store, and from the committed export too
        // (a table built in CI from the export dropped the note).
        try FileManager.default.createDirectory(atPath: "\(dir)/tables", withIntermediateDirectories: true)
        try """
            table: searchy
            title: searchy
            paper: study
            published_table: "searchy"
            spec: \(dir)/searchy.yaml
            kind: score
            average: false
            params_column: false
            sections:
              - {model: t5-small, label: T5-Small}
            rows:
              - {variant: pt, label: PT, published: none}
            columns:
              - {task: cb, label: CB, metric: accuracy}
            """.write(toFile: "\(dir)/tables/searchy.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCapture(["export", "\(dir)/searchy.yaml", "--profile", "smoke", "--db", db, "--results-dir", "\(dir)/exp"]).0, 0)
        var notes: [String] = []
        for (source, out) in [(db, "rep-store"), ("\(dir)/none.sqlite", "rep-export")] {
            let (rc, err) = try runCapture(["report", "searchy", "--profile", "smoke", "--db", source, "--results-dir", "\(dir)/exp", "--tables-dir", "\(dir)/tables",
                                            "--out-dir", "\(dir)/\(out)"])
            XCTAssertEqual(rc, 0, err)
            let table = try String(contentsOfFile: "\(dir)/\(out)/searchy.md", encoding: .utf8)
            let note = table.components(separatedBy: "\n").first { $0.contains("Hyper-parameter search, selected on a dev split") }
            XCTAssertNotNil(note, "\(out): \(table)")
            XCTAssertTrue(note?.contains("pt on cb/t5-small: pt@lr=") == true && note?.contains("(selected on train-dev; 2 grid points, 2 runs, ") == true, note ?? "")
            notes.append(note ?? "")
        }
        XCTAssertEqual(notes[0], notes[1], "the store's note and the export's differ")
        // A store inside the checkout (the default runs/promptrepro.sqlite is such a path) is read
        // as the store, not as an export: its table kept no search note where no export was.
        // (`dir` as the checkout, its manifests the repository's.)
        try FileManager.default.createDirectory(atPath: "\(dir)/Baselines", withIntermediateDirectories: true)
        for sub in ["manifests", "published"] {
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/Baselines/\(sub)", withDestinationPath: "\(repoRoot)/Baselines/\(sub)")
        }
        let (inRC, inErr) = try runCapture(["report", "searchy", "--profile", "smoke", "--db", db, "--results-dir", "\(dir)/no-exports", "--tables-dir", "\(dir)/tables",
                                            "--out-dir", "\(dir)/rep-inside", "--data-dir", data], env: ["PROMPTREPRO_ROOT": dir])
        XCTAssertEqual(inRC, 0, inErr)
        guard inRC == 0 else { return }
        let inside = try String(contentsOfFile: "\(dir)/rep-inside/searchy.md", encoding: .utf8)
        XCTAssertTrue(inside.contains("Hyper-parameter search, selected on a dev split") && inside.contains("from s.sqlite"), inside)
    }

    /// A search edited after its sweep (the grid lost the chosen point; `select_on` changed) has
    /// not chosen under the spec as it is now: the variant's runs at the old choice counted as
    /// current, `export` wrote them and the gate passed on them. They are left out and named, the
    /// gate fails, and the dry run names the cell it will run once the search has chosen.
    func testEditedSearchLeavesTheOldChoiceOut() throws {
        let data = try sharedData()
        let dir = tempDir("searchedit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = searchSpec("searchedit", methods: ["{name: dpt, method: dpt, n: 8, r: 2, search: {grid: {lr: [0.3, 0.5]}, select_on: train-dev}}",
                                                      "{name: pt, method: pt, n: 8}"])
        try spec.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        var (status, err) = try runCapture(["sweep", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(status, 0, err)
        let gate = ["compare", "--spec", "\(dir)/s.yaml", "--method", "dpt", "--baseline", "pt", "--profile", "smoke", "--db", db,
                    "--data-dir", data, "--max-regression", "1000"]
        (status, err) = try runCapture(gate)
        XCTAssertEqual(status, 0, "the unedited spec's gate: \(err)")
        for edited in [spec.replacingOccurrences(of: "lr: [0.3, 0.5]", with: "lr: [0.7, 0.9]"),
                       spec.replacingOccurrences(of: "select_on: train-dev", with: "select_on: val-half")] {
            try edited.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
            let (_, md) = try runStdout(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--data-dir", data])
            XCTAssertFalse(md.contains("| dpt\\|cb"), "the old choice's runs still count:\n\(md)")
            XCTAssertTrue(md.contains("> Left out: "), md)
            (status, err) = try runCapture(gate)
            XCTAssertNotEqual(status, 0, "the gate passed on the old choice's runs: \(err)")
            let (_, dry) = try runCLIText(["sweep", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--data-dir", data, "--dry-run"], stdout: true)
            XCTAssertTrue(dry.contains("then, once its search has chosen") && dry.contains("\n  dpt|cb|t5-small|k8\n"), dry)
        }
    }

    /// DePT's WSC template ("0"/"1" targets) on the label-1 training pool would train on one
    /// constant target: refused, naming the sets that work. The dpt set trains.
    func testWSCWithALabelTargetOnTheLabelOnePoolIsRefused() throws {
        let data = try sharedData()
        let (status, err) = try runCLIText(["train", "--method", "dept", "--task", "wsc", "--model", "embedded:t5-tiny", "--k", "8",
                                            "--epochs", "1", "--data-dir", data], stdout: false)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("wsc with template set 'dept': its target names the label") && err.contains("use the dpt, respt or lopt set"), err)
    }

    /// lm-eval exports say which protocol selected each variant's epochs and which template set
    /// scored them: a val-half variant was labelled "the validation split (paper protocol)".
    func testLMEvalExportNamesTheRunsProtocol() {
        var c = CellResult(cell: "v|rte", variant: "v", method: "pt", task: "rte", model: "t5-small", k: 8, seeds: [1], statuses: ["done": 1],
                           trainableParams: nil, best: ["accuracy": Stat([50])], last: [:], divergedSeeds: [], probe: nil)
        c.protocolLabel = "selection: val-half"
        c.templates = "respt"
        let j = ToolFormats.lmEval(cells: [c], variant: "v", model: "t5-small", spec: "s", profile: "smoke", versions: [:], samples: [:], modelSpec: "m", k: 8)
        let config = j["config"] as? [String: Any]
        XCTAssertEqual(config?["selection"] as? String, "selection: val-half; mean over seeds")
        XCTAssertEqual(config?["templates"] as? [String], ["respt"])
        c.protocolLabel = nil
        let paper = ToolFormats.lmEval(cells: [c], variant: "v", model: "t5-small", spec: "s", profile: "smoke", versions: [:], samples: [:], modelSpec: "m", k: 8)
        XCTAssertEqual((paper["config"] as? [String: Any])?["selection"] as? String, "best epoch on the validation split (default protocol); mean over seeds")
    }
}

/// The text of a one-task smoke spec (CB, t5-small on the embedded tiny backbone, k 8) of
/// `methods` (YAML flow entries), `seeds` and the smoke profile's `train` mapping: the spec the
/// sweep, search and numerics tests write.
func smokeSpec(_ name: String, methods: [String], seeds: String = "[1, 2]", train: String) -> String {
    """
    spec: \(name)
    paper: dpt
    methods:
    \(methods.map { "  - " + $0 }.joined(separator: "\n"))
    tasks: [cb]
    models: [t5-small]
    seeds: \(seeds)
    k: [8]
    profiles:
      smoke:
        models: {t5-small: "embedded:t5-tiny"}
        train: \(train)
    """
}
