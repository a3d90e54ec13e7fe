import Foundation
import Store
import Tasks
import TestSupport
import Training
import XCTest

/// `compare` on a real sweep: the per-example paired bootstrap over stored best-epoch predictions,
/// the spec / profile / backbone header with the smoke disclaimer, `--spec PATH` as `sweep` takes
/// it, and a gate that fails once a run is missing.
final class CompareGateCLITests: XCTestCase {
    /// From a working directory outside the checkout (PROMPTREPRO_ROOT naming it): a sweep records
    /// the checkout's commit (it ran git in the working directory: none), and `report` reads the
    /// committed tables, exports and published numbers (it looked for Baselines/ in the working
    /// directory: "no published CSV files").
    func testCommandsRunFromAnotherDirectoryUseTheCheckout() throws {
        let data = try sharedData()
        let dir = tempDir("elsewhere")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["PROMPTREPRO_ROOT": repoRoot]
        let one = miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1]")
            .replacingOccurrences(of: "epochs: 4", with: "epochs: 1")
        try one.write(toFile: "\(dir)/one.yaml", atomically: true, encoding: .utf8)
        let (swept, log) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--data-dir", data, "--checkpoints", "ck"], cwd: dir, env: env)
        XCTAssertEqual(swept, 0, log)
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", repoRoot, "rev-parse", "HEAD"]
        git.standardOutput = Pipe(); git.standardError = FileHandle.nullDevice
        try git.run(); git.waitUntilExit()
        let commits = try ResultsStore(path: "\(dir)/s.sqlite").db.query("SELECT git_commit FROM runs").map { $0["git_commit"]?.text }
        XCTAssertEqual(commits.count, 2)
        if git.terminationStatus == 0 {  // a checkout (a source tarball has no commit to record)
            XCTAssertTrue(commits.allSatisfy { $0?.count ?? 0 >= 40 }, "\(commits)")
        }
        // Data that differs from its pin stops the sweep before it plans anything: every run failed
        // on the pin after the sweep had superseded the finished runs of the pinned data.
        let cb = "\(dir)/data2/superglue/cb"
        try FileManager.default.createDirectory(atPath: cb, withIntermediateDirectories: true)
        for f in ["train.jsonl", "val.jsonl"] { try FileManager.default.copyItem(atPath: "\(data)/superglue/cb/\(f)", toPath: "\(cb)/\(f)") }
        try (try String(contentsOfFile: "\(cb)/val.jsonl", encoding: .utf8) + "\n").write(toFile: "\(cb)/val.jsonl", atomically: true, encoding: .utf8)
        let before = try ResultsStore(path: "\(dir)/s.sqlite").db.query("SELECT id, status, identity FROM runs ORDER BY id").map { "\($0["id"]?.int ?? 0) \($0["status"]?.text ?? "") \($0["identity"]?.text ?? "")" }
        for extra in [["--dry-run"], []] {
            let (pinned, why) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--data-dir", "data2", "--checkpoints", "ck"] + extra, cwd: dir, env: env)
            XCTAssertNotEqual(pinned, 0, "\(extra)")
            XCTAssertTrue(why.contains("superglue/cb/val.jsonl") && why.contains("differs from the pin") && why.contains("nothing planned, no stored run superseded"), why)
        }
        // Into a store not there yet: refused, and no empty store file left at --db.
        let (fresh, freshWhy) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "new.sqlite", "--data-dir", "data2", "--checkpoints", "ck"], cwd: dir, env: env)
        XCTAssertNotEqual(fresh, 0)
        XCTAssertTrue(freshWhy.contains("differs from the pin") && !FileManager.default.fileExists(atPath: "\(dir)/new.sqlite"), freshWhy)
        // `shard` plans for SLURM workers the same way: refused before any shard is written.
        let (sharded, shardWhy) = try runCapture(["shard", "one.yaml", "--profile", "smoke", "--shards", "2", "--dir", "sh", "--data-dir", "data2"], cwd: dir, env: env)
        XCTAssertNotEqual(sharded, 0)
        XCTAssertTrue(shardWhy.contains("differs from the pin") && !FileManager.default.fileExists(atPath: "\(dir)/sh/shard-0.sqlite"), shardWhy)
        XCTAssertEqual(try ResultsStore(path: "\(dir)/s.sqlite").db.query("SELECT id, status, identity FROM runs ORDER BY id").map { "\($0["id"]?.int ?? 0) \($0["status"]?.text ?? "") \($0["identity"]?.text ?? "")" }, before)
        // A pinned file that is missing is refused before planning too (the runs superseded the
        // finished ones, then failed on "split not found").
        let cb3 = "\(dir)/data3/superglue/cb"
        try FileManager.default.createDirectory(atPath: cb3, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(data)/superglue/cb/train.jsonl", toPath: "\(cb3)/train.jsonl")
        let (gone, goneWhy) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--data-dir", "data3", "--checkpoints", "ck", "--dry-run"], cwd: dir, env: env)
        XCTAssertNotEqual(gone, 0)
        XCTAssertTrue(goneWhy.contains("data3/superglue/cb/val.jsonl: cb validation file pinned in") && goneWhy.contains("is missing")
                      && goneWhy.contains("nothing planned, no stored run superseded"), goneWhy)
        // `shard` plans for workers that read the data elsewhere: a split with no file here is
        // theirs to find (the first version refused it), while `sweep` runs here and refuses.
        try FileManager.default.createDirectory(atPath: "\(dir)/nodata", withIntermediateDirectories: true)
        let (shardNoData, shardNoDataWhy) = try runCapture(["shard", "one.yaml", "--profile", "smoke", "--shards", "2", "--dir", "sh2", "--data-dir", "nodata"], cwd: dir, env: env)
        XCTAssertEqual(shardNoData, 0, shardNoDataWhy)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/sh2/shard-0.sqlite"))
        let (sweepNoData, sweepNoDataWhy) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--data-dir", "nodata", "--dry-run"], cwd: dir, env: env)
        XCTAssertNotEqual(sweepNoData, 0)
        XCTAssertTrue(sweepNoDataWhy.contains("is missing"), sweepNoDataWhy)
        // A refused shard plan leaves nothing under --dir (it left identities.sqlite).
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/sh"), "refused with data2 above")
        // Runs swept with --allow-unpinned on the edited file: compared on that data directory
        // their inputs are current, so only the stored hashes against the lock tell; the gate
        // passed on them (exit 0) and reads said nothing.
        let (unpinnedSweep, unpinnedLog) = try runCapture(["sweep", "one.yaml", "--profile", "smoke", "--db", "u.sqlite", "--data-dir", "data2", "--checkpoints", "ck", "--allow-unpinned"], cwd: dir, env: env)
        XCTAssertEqual(unpinnedSweep, 0, unpinnedLog)
        let (gated, gateOut) = try runCLIText(["compare", "--spec", "one.yaml", "--profile", "smoke", "--db", "u.sqlite", "--data-dir", "data2",
                                               "--method", "dpt", "--baseline", "pt", "--max-regression", "100"], stdout: true, cwd: dir, env: env)
        XCTAssertEqual(gated, 1, gateOut)
        XCTAssertTrue(gateOut.contains("- dpt|cb|t5-small|k8 seed 1: superglue/cb/val.jsonl (sha256 ") && gateOut.contains("- pt|cb|t5-small|k8 seed 1"), gateOut)
        XCTAssertTrue(gateOut.contains("FAILED — 2 runs read data that differs from its pin"), gateOut)
        let (_, resultsErr) = try runCapture(["results", "one.yaml", "--profile", "smoke", "--db", "u.sqlite", "--data-dir", "data2"], cwd: dir, env: env)
        XCTAssertTrue(resultsErr.contains("warning: 2 counted runs of spec mini [smoke] read data that differs from its pin"), resultsErr)
        // A variant gated against itself differs by 0 on every seed: refused.
        let (selfGate, selfWhy) = try runCapture(["compare", "--spec", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--method", "dpt", "--baseline", "dpt",
                                                  "--max-regression", "1"], cwd: dir, env: env)
        XCTAssertNotEqual(selfGate, 0)
        XCTAssertTrue(selfWhy.contains("--method and --baseline are both dpt"), selfWhy)
        // An export read under a spec edited since (DPT's r 2 → 3, never run): its DPT cell was
        // shown under the new spec with the old runs' numbers; it is left out and named.
        let (exported, exportErr) = try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--results-dir", "exp"], cwd: dir, env: env)
        XCTAssertEqual(exported, 0, exportErr)
        // A store lacking a finished run of that export (a partial merge) does not replace it
        // without --replace (a 20-cell export became 4 cells, exit 0).
        try FileManager.default.copyItem(atPath: "\(dir)/s.sqlite", toPath: "\(dir)/partial.sqlite")
        try ResultsStore(path: "\(dir)/partial.sqlite").db.query("DELETE FROM runs WHERE variant='pt' AND seed=1")
        let exportedBytes = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/exp/mini-smoke.cells.json"))
        let (partial, partialWhy) = try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "partial.sqlite", "--results-dir", "exp"], cwd: dir, env: env)
        XCTAssertEqual(partial, 1, partialWhy)
        XCTAssertTrue(partialWhy.contains("exp/mini-smoke.cells.json holds 1 finished run that partial.sqlite lacks (e.g. pt|cb|t5-small|k8 seed 1)")
                      && partialWhy.contains("nothing overwritten"), partialWhy)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/exp/mini-smoke.cells.json")), exportedBytes)
        XCTAssertEqual(try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "partial.sqlite", "--results-dir", "exp", "--replace"], cwd: dir, env: env).0, 0)
        XCTAssertEqual(try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "s.sqlite", "--results-dir", "exp"], cwd: dir, env: env).0, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/exp/mini-smoke.cells.json")), exportedBytes)
        try one.replacingOccurrences(of: "n: 8, r: 2", with: "n: 8, r: 3").write(toFile: "\(dir)/r3.yaml", atomically: true, encoding: .utf8)
        for (file, stale) in [("one.yaml", false), ("r3.yaml", true)] {
            let (_, readErr) = try runCapture(["compare", "--spec", file, "--profile", "smoke", "--results-dir", "exp", "--db", "none.sqlite",
                                               "--method", "dpt", "--baseline", "pt"], cwd: dir, env: env)
            XCTAssertEqual(readErr.contains("cells of exp/mini-smoke.cells.json ran with other settings than spec mini [smoke] plans now (edited since the export) and are left out: dpt|cb|t5-small|k8;"),
                           stale, readErr)
            let (_, compareOut) = try runCLIText(["compare", "--spec", file, "--profile", "smoke", "--results-dir", "exp", "--db", "none.sqlite",
                                                  "--method", "dpt", "--baseline", "pt"], stdout: true, cwd: dir, env: env)
            XCTAssertEqual(compareOut.contains("Missing runs"), stale, compareOut)
            // Each side's settings as the spec writes them (an edited r showed nowhere).
            XCTAssertTrue(compareOut.contains("Settings of dpt in the spec: method dpt {n: 8, r: \(stale ? 3 : 2)}"), compareOut)
            // The store read says in its output, not only on stderr, that the edited cell's runs are left out.
            let (_, resultsOut) = try runCLIText(["results", file, "--profile", "smoke", "--db", "s.sqlite"], stdout: true, cwd: dir, env: env)
            XCTAssertEqual(resultsOut.contains("> Left out: 1 stored run of 1 cell (e.g. dpt|cb|t5-small|k8) ran under settings, task files or inputs that spec mini no longer plans"),
                           stale, resultsOut)
            // csv and json say it in band: the edited cell (its one run stale, none remaining) had
            // no row there and only stderr said why.
            let (_, csvOut) = try runCLIText(["results", file, "--profile", "smoke", "--db", "s.sqlite", "--format", "csv"], stdout: true, cwd: dir, env: env)
            XCTAssertEqual(csvOut.contains("\ndpt|cb|t5-small|k8,dpt,dpt,cb,t5-small,8,left_out,stale_runs,1,,,,,,,smoke,true,\n"), stale, csvOut)
            XCTAssertEqual(csvOut.contains("dpt|cb|t5-small|k8,dpt,dpt,cb,t5-small,8,best,"), !stale, csvOut)
            let (_, jsonOut) = try runCLIText(["results", file, "--profile", "smoke", "--db", "s.sqlite", "--format", "json"], stdout: true, cwd: dir, env: env)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(jsonOut.utf8)) as? [String: Any])
            let leftOut = json["left_out"] as? [[String: Any]]
            XCTAssertEqual(leftOut?.count, stale ? 1 : nil, jsonOut)
            if stale {
                XCTAssertEqual(leftOut?.first?["cell"] as? String, "dpt|cb|t5-small|k8")
                XCTAssertEqual(leftOut?.first?["stale_runs_by_status"] as? [String: Int], ["done": 1])
                XCTAssertEqual(leftOut?.first?["in_results"] as? Bool, false)
                XCTAssertEqual(leftOut?.first?["reasons"] as? [String], ["planned with another config since (spec edited, not re-swept)"])
            }
        }
        // An export from a store none of whose runs of the spec finished (a shard before its
        // workers ran) is refused: it replaced the full export with empty cells, exit 0.
        let exportBefore = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/exp/mini-smoke.cells.json"))
        XCTAssertEqual(try runCapture(["shard", "one.yaml", "--profile", "smoke", "--shards", "1", "--dir", "fresh", "--data-dir", data], cwd: dir, env: env).0, 0)
        let (emptyExport, emptyWhy) = try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "fresh/shard-0.sqlite", "--results-dir", "exp"], cwd: dir, env: env)
        XCTAssertEqual(emptyExport, 1, emptyWhy)
        XCTAssertTrue(emptyWhy.contains("no run of spec mini [smoke] has ended (2 pending); nothing exported, nothing overwritten"), emptyWhy)
        // Other formats write elsewhere and replace no export: they are not refused (per-run JSON of pending runs).
        XCTAssertEqual(try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "fresh/shard-0.sqlite", "--format", "lm-eval", "--out", "lm-fresh"], cwd: dir, env: env).0, 0)
        // A store whose runs all failed is a result (tables mark ✗ failed) and is exported.
        let failedStore = try ResultsStore(path: "\(dir)/fresh/shard-0.sqlite")
        try failedStore.db.query("UPDATE runs SET status='failed'")
        XCTAssertEqual(try runCapture(["export", "one.yaml", "--profile", "smoke", "--db", "fresh/shard-0.sqlite", "--results-dir", "exp-failed"], cwd: dir, env: env).0, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/exp/mini-smoke.cells.json")), exportBefore)
        // compare reading a broken export names it (a bare DecodingError named no file).
        try FileManager.default.createDirectory(atPath: "\(dir)/bad", withIntermediateDirectories: true)
        try "[{\"cell\": ".write(toFile: "\(dir)/bad/mini-smoke.cells.json", atomically: true, encoding: .utf8)
        let (badRead, badWhy) = try runCapture(["compare", "--spec", "one.yaml", "--profile", "smoke", "--results-dir", "bad", "--db", "none.sqlite",
                                                "--method", "dpt", "--baseline", "pt"], cwd: dir, env: env)
        XCTAssertEqual(badRead, 1, badWhy)
        XCTAssertTrue(badWhy.contains("bad/mini-smoke.cells.json: not a cells export (not valid JSON)"), badWhy)
        let (reported, err) = try runCapture(["report", "lopt-table2", "table1", "--profile", "smoke", "--db", "none.sqlite", "--out-dir", "rep"], cwd: dir, env: env)
        XCTAssertEqual(reported, 0, err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/rep/lopt-table2.md"), "an explicit relative --out-dir is the working directory's")
        // The same tables as from inside the checkout (the spec was read from the working
        // directory: table1 lost every T5-Base and T5-Large parameter count, "220M / —").
        let (inside, insideErr) = try runCapture(["report", "lopt-table2", "table1", "--profile", "smoke", "--db", "\(dir)/none.sqlite", "--out-dir", "\(dir)/rep-inside"])
        XCTAssertEqual(inside, 0, insideErr)
        for f in ["table1.md", "table1.tex", "lopt-table2.md"] {
            XCTAssertEqual(try String(contentsOfFile: "\(dir)/rep/\(f)", encoding: .utf8), try String(contentsOfFile: "\(dir)/rep-inside/\(f)", encoding: .utf8), f)
        }
        let (figured, figErr) = try runCapture(["figures", "fig4", "--profile", "smoke", "--db", "none.sqlite", "--out-dir", "figs"], cwd: dir, env: env)
        let (figuredIn, figInErr) = try runCapture(["figures", "fig4", "--profile", "smoke", "--db", "\(dir)/none.sqlite", "--out-dir", "\(dir)/figs-inside"])
        XCTAssertEqual(figured, figuredIn, figErr + figInErr)
        XCTAssertEqual(try String(contentsOfFile: "\(dir)/figs/fig4.dat", encoding: .utf8), try String(contentsOfFile: "\(dir)/figs-inside/fig4.dat", encoding: .utf8))
    }

    func testCompareOnASweepUsesStoredPredictionsAndGatesOnMissingRuns() throws {
        let data = try sharedData()
        let dir = tempDir("cmpcli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Rank classification: under greedy decoding the random smoke backbone names no label on
        // either side (100% invalid), a comparison the gate refuses to judge.
        try miniSpec.replacingOccurrences(of: "train: {epochs: 4,", with: "train: {eval_mode: rank, epochs: 4,")
            .write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        func compare(_ extra: [String]) throws -> (Int32, String) {
            try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", "dpt", "--baseline", "pt", "--db", db, "--data-dir", data] + extra)
        }
        let (status, text) = try compare(["--max-regression", "1000"])
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("paired bootstrap over 16 examples × 2 seeds"), text)
        XCTAssertTrue(text.contains("profile **smoke**") && text.contains("t5-small = embedded:t5-tiny") && text.contains("reproduce nothing"), text)
        // Every verdict agrees with its printed interval.
        for line in text.split(separator: "\n") where line.hasPrefix("| cb") || line.hasPrefix("| rte") {
            let cols = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let ci = cols[5].dropFirst().prefix { $0 != "]" }.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(ci.count, 2, line.description)
            let verdict = cols[9]
            XCTAssertEqual(verdict, ci[0] > 0 ? "win" : (ci[1] < 0 ? "loss" : "tie"), line.description)
        }
        // Results for other tools: lm-eval-shaped JSON per variant and column, PEFT method_comparison JSON per run.
        XCTAssertEqual(try runCLI(["export", "mini", "--db", db, "--format", "lm-eval", "--out", "\(dir)/lm", "--data-dir", try sharedData()]).terminationStatus, 0)
        // lm-eval's layout: a folder per model (variant, column, k), results_<date>.json in it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/lm").sorted(), ["mini__smoke__dpt__t5-small__k8", "mini__smoke__pt__t5-small__k8"])
        let lmFiles = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/lm/mini__smoke__dpt__t5-small__k8")
        XCTAssertEqual(lmFiles.count, 1)
        let lmName = try XCTUnwrap(lmFiles.first)
        XCTAssertNotNil(lmName.range(of: #"^results_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{6}\.json$"#, options: .regularExpression), lmName)
        let lmText = try String(contentsOfFile: "\(dir)/lm/mini__smoke__dpt__t5-small__k8/\(lmName)", encoding: .utf8)
        let lm = try JSONSerialization.jsonObject(with: Data(lmText.utf8)) as! [String: Any]
        XCTAssertEqual(Set(lm.keys), ["results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config",
                                      "model_source", "model_name", "model_name_sanitized", "date"])
        XCTAssertEqual(lm["model_name"] as? String, "mini/smoke/dpt/t5-small/k8")
        XCTAssertEqual(lm["model_name_sanitized"] as? String, "mini__smoke__dpt__t5-small__k8")
        // Task names of their own (lm-eval's `cb` and `rte` are other tasks), the alias the task's.
        let cbResults = try XCTUnwrap((lm["results"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])
        XCTAssertEqual(cbResults["alias"] as? String, "cb")
        XCTAssertEqual(cbResults["name"] as? String, "promptrepro_cb")
        XCTAssertEqual(cbResults["sample_len"] as? Int, 16)
        XCTAssertNotNil(cbResults["accuracy,none"])
        // lm-eval's per-task, per-metric direction (make_table's arrows).
        XCTAssertEqual((lm["higher_is_better"] as? [String: Any])?["promptrepro_cb"] as? [String: Bool], ["accuracy": true, "macro_f1": true])
        XCTAssertEqual((lm["n-shot"] as? [String: Int]), ["promptrepro_cb": 0, "promptrepro_rte": 0], "no in-context examples")
        XCTAssertEqual(((lm["configs"] as? [String: Any])?["promptrepro_rte"] as? [String: Any])?["output_type"] as? String, "multiple_choice", "the spec ranks (eval_mode rank)")
        XCTAssertEqual(((lm["n-samples"] as? [String: Any])?["promptrepro_rte"] as? [String: Any])?["effective"] as? Int, 16)
        // "original" is the split's size (SuperGLUE RTE validation: 277 rows), not the eval_limit.
        XCTAssertEqual(((lm["n-samples"] as? [String: Any])?["promptrepro_rte"] as? [String: Any])?["original"] as? Int, 277)
        // Versions and scores are written as Python floats ("1.0", "0.0": make_table formats floats only).
        XCTAssertNotNil(lmText.range(of: #""promptrepro_cb": 1\.0"#, options: .regularExpression), lmText)
        XCTAssertNil(lmText.range(of: #""accuracy,none": -?\d+,?\n"#, options: .regularExpression), lmText)
        // The stderr is over seeds (mini plans 2), which config says, with each task's seed count;
        // config has lm-eval's limit and batch size and the few-shot size.
        let lmConfig = lm["config"] as? [String: Any]
        XCTAssertTrue((lmConfig?["stderr"] as? String)?.hasPrefix("standard error of the mean over seeds") == true, "\(lmConfig ?? [:])")
        XCTAssertEqual(((lmConfig?["seeds"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])?["n"] as? Int, 2)
        XCTAssertEqual(lmConfig?["limit"] as? Int, 16)
        XCTAssertEqual(lmConfig?["k"] as? Int, 8)
        XCTAssertEqual(lmConfig?["presets"] as? [String], ["dpt-paper"], "which preset the default protocol is")
        XCTAssertNotNil(lmConfig?["batch_size"] as? Int)
        // A second export replaces the first's files (a reader took every results_*.json of a
        // folder for the model's runs) and leaves other files alone.
        try "{}".write(toFile: "\(dir)/lm/mini__smoke__dpt__t5-small__k8/notes.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCLI(["export", "mini", "--db", db, "--format", "lm-eval", "--out", "\(dir)/lm", "--data-dir", try sharedData()]).terminationStatus, 0)
        let again = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/lm/mini__smoke__dpt__t5-small__k8").sorted()
        XCTAssertEqual(again.count, 2, again.description)
        XCTAssertTrue(again.contains("notes.json") && !again.contains(lmName), again.description)
        XCTAssertEqual(try runCLI(["export", "mini", "--db", db, "--format", "peft-bench", "--out", "\(dir)/pb"]).terminationStatus, 0)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/pb")
        XCTAssertEqual(runs.count, 8)
        let one = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/pb/\(runs.sorted()[0])"))) as! [String: Any]
        XCTAssertEqual(Set(one.keys), ["run_info", "train_info", "meta_info"])
        XCTAssertEqual((one["train_info"] as? [String: Any])?["status"] as? String, "success")
        // peft_config lists the settings the run's method reads (DPT listed LoRA's alpha, DePT's m and s),
        // with PEFT's peft_type.
        for f in runs.sorted() where f.hasPrefix("dpt") {
            let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/pb/\(f)"))) as! [String: Any]
            let peft = ((run["run_info"] as? [String: Any])?["peft_config"] as? [String: Any]) ?? [:]
            XCTAssertEqual(Set(peft.keys).subtracting(["init_tokens"]), ["method", "n", "r", "init", "peft_type"], f)
        }
        // Every key PEFT's reader takes (huggingface/peft method_comparison/processing.py,
        // `preprocess`: it failed with KeyError 'peft_type' on every file, and skipped any status
        // but "success"), and its accuracies as fractions: "test accuracy" is the best-epoch score
        // `results` reports ÷ 100.
        for f in runs.sorted() {
            let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/pb/\(f)"))) as! [String: Any]
            let runInfo = try XCTUnwrap(run["run_info"] as? [String: Any]), trainInfo = try XCTUnwrap(run["train_info"] as? [String: Any])
            let meta = try XCTUnwrap(run["meta_info"] as? [String: Any])
            for key in ["experiment_name", "total_time", "peft_branch", "created_at", "peft_config", "train_config"] { XCTAssertNotNil(runInfo[key], "\(f): run_info.\(key)") }
            XCTAssertNotNil((runInfo["train_config"] as? [String: Any])?["model_id"] as? String, f)
            for key in ["status", "accelerator_memory_reserved_avg", "accelerator_memory_max", "accelerator_memory_reserved_99th", "train_time", "file_size", "metrics"] {
                XCTAssertNotNil(trainInfo[key], "\(f): train_info.\(key)")
            }
            let last = try XCTUnwrap((trainInfo["metrics"] as? [[String: Any]])?.last, f)
            for key in ["test accuracy", "train loss", "train samples", "train total tokens"] { XCTAssertNotNil(last[key], "\(f): metrics[-1].\(key)") }
            let package = try XCTUnwrap(meta["package_info"] as? [String: Any])
            for key in ["peft-version", "transformers-version", "datasets-version", "torch-version", "bitsandbytes-version"] { XCTAssertNotNil(package[key], "\(f): \(key)") }
            XCTAssertNotNil(meta["system_info"] as? [String: Any], f)
            let id = try XCTUnwrap(try ResultsStore(path: db).db.query("SELECT id FROM runs WHERE cell=? AND seed=? AND status='done'",
                                                                      [.text(runInfo["experiment_name"] as? String ?? ""), .int((trainInfo["seed"] as? Int) ?? 0)]).first?["id"]?.int, f)
            let bestAccuracy = try XCTUnwrap(try ResultsStore(path: db).db.query("SELECT value FROM scores WHERE run_id=? AND kind='best' AND metric='accuracy'", [.int(id)]).first?["value"]?.double)
            XCTAssertEqual(try XCTUnwrap(last["test accuracy"] as? Double), bestAccuracy / 100, accuracy: 1e-12, f)
            XCTAssertEqual(trainInfo["num_total_params"] as? Int, 247_296 + ((runInfo["peft_config"] is NSNull) ? 0 : (trainInfo["num_trainable_params"] as? Int ?? 0)), f)
        }
        // Each run file says it is a smoke run of the embedded backbone (it named only "t5-small").
        let modelInfo = (one["meta_info"] as? [String: Any])?["model_info"] as? [String: Any]
        XCTAssertEqual(modelInfo?["smoke"] as? Bool, true, "\(modelInfo ?? [:])")
        XCTAssertEqual(modelInfo?["profile"] as? String, "smoke")
        // So does every CSV row of `results` (it had no profile column).
        let (csvStatus, csv) = try runCLIText(["results", "\(dir)/mini.yaml", "--db", db, "--profile", "smoke", "--format", "csv"], stdout: true)
        XCTAssertEqual(csvStatus, 0)
        let csvLines = csv.split(separator: "\n")
        XCTAssertTrue(csvLines.first?.hasSuffix(",values,profile,smoke,grid_point_of") == true, csv)
        XCTAssertTrue(csvLines.count > 1 && csvLines.dropFirst().allSatisfy { $0.hasSuffix(",smoke,true,") }, csv)
        // One PT seed fails: the gate lists it and fails; --allow-missing gates on the rest.
        let s = try ResultsStore(path: db)
        try s.db.query("UPDATE runs SET status='failed', error='test' WHERE variant='pt' AND task='rte' AND seed=2")
        let (failed, ftext) = try compare(["--max-regression", "1000"])
        XCTAssertEqual(failed, 1)
        XCTAssertTrue(ftext.contains("baseline 'pt' rte t5-small k=8: seed 2 missing (1 failed)"), ftext)
        XCTAssertEqual(try compare(["--max-regression", "1000", "--allow-missing"]).0, 0)
        // results says which planned runs its means leave out (it printed n=1 with no word).
        let (rs, rerr) = try runCapture(["results", "\(dir)/mini.yaml", "--db", db, "--profile", "smoke"])
        XCTAssertEqual(rs, 0, rerr)
        XCTAssertTrue(rerr.contains("1 of the 8 runs spec mini [smoke] plans have no finished result here") && rerr.contains("pt|rte|t5-small|k8 seed 2"), rerr)

        // A store with no run of the spec (a sweep whose model was missing, shards never run): the
        // committed export stands in for reading, never for the gate, which finds every run missing
        // (it passed on the export's numbers).
        XCTAssertEqual(try runCLI(["export", "\(dir)/mini.yaml", "--db", db, "--results-dir", "\(dir)/res", "--data-dir", data]).terminationStatus, 0)
        _ = try ResultsStore(path: "\(dir)/empty.sqlite")
        func compareEmpty(_ extra: [String]) throws -> (Int32, String) {
            try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", "dpt", "--baseline", "pt", "--db", "\(dir)/empty.sqlite",
                           "--results-dir", "\(dir)/res", "--data-dir", data] + extra)
        }
        let (read, rtext) = try compareEmpty([])
        XCTAssertEqual(read, 0, rtext)
        XCTAssertTrue(rtext.contains("runs from \(dir)/res/mini-smoke.cells.json"), rtext)
        let (gated, gtext) = try compareEmpty(["--max-regression", "1000"])
        XCTAssertEqual(gated, 1, gtext)
        XCTAssertTrue(gtext.contains("runs from \(dir)/empty.sqlite") && gtext.contains("FAILED") && gtext.contains("8 runs missing") && gtext.contains("Missing runs (8 runs in 4 cells)"), gtext)
    }
}

/// A spec with two few-shot sizes: `compare` pairs each k's runs with the same k's (its rows name
/// the k), reads only what the spec plans now, and `export` never replaces a committed export with
/// nothing.
final class CompareCellsCLITests: XCTestCase {
    /// (exit status, stdout and stderr together).
    func runBoth(_ args: [String]) throws -> (Int32, String) { try runMerged(try binary(), args) }

    func testCompareKeepsEachKApartAndFollowsTheSpec() throws {
        let data = try sharedData()
        let dir = tempDir("cmpk")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(k: String, seeds: String) throws {
            try miniSpec.replacingOccurrences(of: "spec: mini", with: "spec: minik").replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]")
                .replacingOccurrences(of: "k: [8]", with: "k: \(k)").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: \(seeds)")
                .replacingOccurrences(of: "train: {epochs: 4,", with: "train: {eval_mode: rank, epochs: 4,")  // labels on both sides (see above)
                .write(toFile: "\(dir)/minik.yaml", atomically: true, encoding: .utf8)
        }
        try write(k: "[8, 16]", seeds: "[1, 2]")
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/minik.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        // Make the two k's tell apart: at k 16, PT's best predictions are the gold targets (every
        // metric 100) and DPT's name no label (every metric 0), so that cell's Δ is −100 in every
        // resample; k 8 keeps what it trained to.
        let s = try ResultsStore(path: db)
        let def = try TaskRegistry.definition("cb")
        for r in try s.db.query("SELECT id, variant, config_json FROM runs WHERE k=16") {
            let cfg = try JSONDecoder().decode(TrainConfig.self, from: Data(r["config_json"]!.text!.utf8))
            let gold = try Templates.examples(try DataLoader.load(def, split: .validation, dataDir: data), set: cfg.templates, training: false)
            let pt = r["variant"]!.text! == "pt"
            let n = try s.predictions(run: r["id"]!.int!, kind: "best").count
            XCTAssertEqual(n, 16)
            for i in 0..<n {
                try s.db.query("UPDATE predictions SET prediction=? WHERE run_id=? AND kind='best' AND position=?",
                               [.text(pt ? gold[i].target : "zzz"), r["id"]!, .int(i)])
            }
            try s.db.query("UPDATE scores SET value=? WHERE run_id=? AND kind='best'", [.double(pt ? 100 : 0), r["id"]!])
            try s.db.query("DELETE FROM run_metrics WHERE run_id=? AND name LIKE 'invalid_fraction%'", [r["id"]!])
        }
        func compare(_ extra: [String] = []) throws -> (Int32, String) {
            try runStdout(["compare", "--spec", "\(dir)/minik.yaml", "--method", "dpt", "--baseline", "pt", "--db", db, "--data-dir", data,
                           "--max-regression", "1000"] + extra)
        }
        let (status, text) = try compare()
        XCTAssertEqual(status, 0, text)
        var rows = 0
        for line in text.split(separator: "\n") where line.hasPrefix("| cb") {
            rows += 1
            let cols = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertTrue(cols[0].hasSuffix("k=8") || cols[0].hasSuffix("k=16"), line.description)
            XCTAssertTrue(cols[8].hasPrefix("paired bootstrap over 16 examples × 2 seeds"), line.description)
            let delta = try XCTUnwrap(Double(cols[4]), line.description)
            let ci = cols[5].dropFirst().prefix { $0 != "]" }.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(ci.count, 2, line.description)
            // The interval is that cell's own: it holds the cell's Δ.
            XCTAssertLessThanOrEqual(ci[0], delta, line.description)
            XCTAssertGreaterThanOrEqual(ci[1], delta, line.description)
            if cols[0].hasSuffix("k=16") {
                XCTAssertEqual(delta, -100, line.description)
                XCTAssertEqual(ci, [-100, -100], line.description)
            }
        }
        XCTAssertEqual(rows, 2, text)
        // peft-bench export of a crossed design: one file per (seed, sample seed); names without the
        // sample seed once wrote 4 of these 8 runs over the others.
        try miniSpec.replacingOccurrences(of: "spec: mini", with: "spec: minix").replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]")
            .replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, 2]\nsample_seeds: [1, 2]")
            .replacingOccurrences(of: "epochs: 4", with: "epochs: 1")
            .write(toFile: "\(dir)/minix.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/minix.yaml", "--profile", "smoke", "--workers", "2", "--db", "\(dir)/x.sqlite", "--data-dir", data,
                                   "--checkpoints", "\(dir)/ckx"]).terminationStatus, 0)
        XCTAssertEqual(try runCLI(["export", "\(dir)/minix.yaml", "--db", "\(dir)/x.sqlite", "--format", "peft-bench", "--out", "\(dir)/pbx"]).terminationStatus, 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/pbx").sorted()
        XCTAssertEqual(names.count, 8, names.description)
        XCTAssertEqual(names.filter { $0.hasSuffix("-s1-d2.json") || $0.hasSuffix("-s2-d1.json") }.count, 4, names.description)
        // lm-eval export: one file per k (a file keyed by task alone kept one k's cell, the other
        // dropped without a word), each naming its k.
        XCTAssertEqual(try runCLI(["export", "\(dir)/minik.yaml", "--db", db, "--format", "lm-eval", "--out", "\(dir)/lm"]).terminationStatus, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/lm").sorted(),
                       ["minik__smoke__dpt__t5-small__k16", "minik__smoke__dpt__t5-small__k8", "minik__smoke__pt__t5-small__k16", "minik__smoke__pt__t5-small__k8"])
        func lmAccuracy(_ folder: String) throws -> (Double?, Int?) {
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/lm/\(folder)")
            XCTAssertEqual(files.count, 1, files.description)
            let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/lm/\(folder)/\(files[0])"))) as! [String: Any]
            return (((o["results"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])?["accuracy,none"] as? Double, (o["config"] as? [String: Any])?["k"] as? Int)
        }
        let (pt16, k16) = try lmAccuracy("minik__smoke__pt__t5-small__k16"), (pt8, k8) = try lmAccuracy("minik__smoke__pt__t5-small__k8")
        XCTAssertEqual(pt16, 1)
        XCTAssertEqual(k16, 16)
        XCTAssertEqual(k8, 8)
        XCTAssertNotEqual(pt8, 1, "k 8's cell is its own")

        // The spec drops k 16 and seed 2: only k 8 seed 1 counts (the rest named on stderr), and
        // `results` says so too.
        try write(k: "[8]", seeds: "[1]")
        let (one, narrowed) = try runBoth(["compare", "--spec", "\(dir)/minik.yaml", "--method", "dpt", "--baseline", "pt", "--db", db,
                                              "--data-dir", data])
        XCTAssertEqual(one, 0, narrowed)
        XCTAssertTrue(narrowed.contains("6 stored runs of spec minik [smoke] left out: 6 no longer planned by the spec"), narrowed)
        XCTAssertFalse(narrowed.contains("k=16"), narrowed)
        XCTAssertTrue(narrowed.contains("paired t over 1 seeds") || narrowed.contains("× 1 seed"), narrowed)
        // The step log (`steps`, behind `loss-curves` too) follows the spec the same way, by path.
        let (stepsStatus, csv) = try runStdout(["steps", "\(dir)/minik.yaml", "--profile", "smoke", "--db", db])
        XCTAssertEqual(stepsStatus, 0)
        XCTAssertEqual(Set(csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").prefix(2).joined(separator: ",") }),
                       ["\"dpt|cb|t5-small|k8\",1", "\"pt|cb|t5-small|k8\",1"], csv)
        // A re-sweep trains nothing: the finished runs outside the plan stay, not counted.
        var (swept, log) = try runCapture(["sweep", "\(dir)/minik.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                           "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(swept, 0, log)
        XCTAssertTrue(log.contains("2 runs (0 new"), log)
        XCTAssertTrue(log.contains("finished: pending 0, running 0, done 2, failed 0, diverged 0, evaluated 0; "
                                   + "6 finished runs the spec no longer plans kept, not counted"), log)
        // Listing them again reuses them: nothing is trained anew.
        try write(k: "[8, 16]", seeds: "[1, 2]")
        (swept, log) = try runCapture(["sweep", "\(dir)/minik.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                       "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(swept, 0, log)
        XCTAssertTrue(log.contains("8 runs (0 new"), log)
        XCTAssertTrue(log.contains("finished: pending 0, running 0, done 8, failed 0, diverged 0, evaluated 0\n"), log)

        // An edited method config, not re-swept: its runs are stale, so the gate finds them missing.
        try String(contentsOfFile: "\(dir)/minik.yaml", encoding: .utf8).replacingOccurrences(of: "r: 2}", with: "r: 1}")
            .write(toFile: "\(dir)/minik.yaml", atomically: true, encoding: .utf8)
        let (gate, gated) = try runBoth(["compare", "--spec", "\(dir)/minik.yaml", "--method", "dpt", "--baseline", "pt", "--db", db,
                                         "--data-dir", data, "--max-regression", "100"])
        XCTAssertEqual(gate, 1, gated)
        XCTAssertTrue(gated.contains("4 planned with another config since"), gated)
        XCTAssertTrue(gated.contains("`promptrepro sweep \(dir)/minik.yaml --profile smoke` reruns them"), gated)
        XCTAssertTrue(gated.contains("new 'dpt' cb t5-small k=8: seeds 1, 2 missing"), gated)
        XCTAssertTrue(gated.contains("new 'dpt' cb t5-small k=16: seeds 1, 2 missing"), gated)

        // `export` of a spec without runs in the store writes nothing and keeps the file there.
        let results = "\(dir)/results"
        try FileManager.default.createDirectory(atPath: results, withIntermediateDirectories: true)
        try "[42]".write(toFile: "\(results)/other-smoke.cells.json", atomically: true, encoding: .utf8)
        let (exported, message) = try runCapture(["export", "other", "--db", db, "--results-dir", results])
        XCTAssertNotEqual(exported, 0, message)
        XCTAssertTrue(message.contains("nothing exported") && message.contains("minik [smoke]"), message)
        XCTAssertEqual(try String(contentsOfFile: "\(results)/other-smoke.cells.json", encoding: .utf8), "[42]")
    }
}
