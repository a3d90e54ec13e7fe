import Foundation
import Harness
import TestSupport
import XCTest

/// A spec's `search`, read as a researcher reads it: from an export under an edited spec, with its
/// grid points beside it, and with grids that would not search what they say.
final class SearchTrustTests: XCTestCase {
    func spec(_ dir: String, _ name: String, n: Int = 4, grid: String = "{lr: [0.0003, 3.0]}", extra: String = "") throws -> String {
        let path = "\(dir)/\(name).yaml"
        try smokeSpec("srch", methods: ["{name: pt, method: pt, n: 4}", "{name: pts, method: pt, n: \(n)\(extra), search: {grid: \(grid), select_on: val-half}}"],
                      train: "{epochs: 1, batch_size: 4, eval_limit: 8, eval_batch_size: 8, decode_max_tokens: 2, max_source_length: 64}")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// An export read under an edited spec: the searched cell's choice is redone from the exported
    /// grid points as the spec plans them now. With the entry's n changed, no point ran as planned,
    /// so the search is undecided and its cell is left out and named (it was kept whole: the old
    /// n = 4 numbers under "n: 6"). Unedited, the export's cell is read as before.
    func testAnExportReadUnderAnEditedSpecRedoesTheSearchChoice() throws {
        let data = try sharedData()
        let dir = tempDir("searchexport")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite", results = "\(dir)/results"
        var (rc, log) = try runCLIText(["sweep", try spec(dir, "s"), "--profile", "smoke", "--workers", "1", "--threads", "1", "--db", db,
                                        "--data-dir", data, "--checkpoints", "\(dir)/ck"], stdout: false)
        XCTAssertEqual(rc, 0, log)
        (rc, log) = try runCLIText(["export", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--results-dir", results, "--data-dir", data], stdout: false)
        XCTAssertEqual(rc, 0, log)
        // Sharding the chosen points from a store that finished the search (`shard --search-db`)
        // shards only what that store has not finished: here nothing (every run was sharded and
        // retrained).
        let (src, slog) = try runCLIText(["shard", "\(dir)/s.yaml", "--profile", "smoke", "--shards", "2", "--dir", "\(dir)/shards",
                                          "--search-db", db, "--data-dir", data], stdout: false)
        XCTAssertEqual(src, 0, slog)
        XCTAssertTrue(slog.contains("0 runs of srch [smoke] in 2 shards") && slog.contains("finished in \(db) left out"), slog)
        // Also where the data is not (a login node): the plan's identities say "missing" for the
        // data, and the runs the workers finished with it still count as finished.
        try FileManager.default.createDirectory(atPath: "\(dir)/nodata", withIntermediateDirectories: true)
        let (nrc, nlog) = try runCLIText(["shard", "\(dir)/s.yaml", "--profile", "smoke", "--shards", "2", "--dir", "\(dir)/shards2",
                                          "--search-db", db, "--data-dir", "\(dir)/nodata"], stdout: false)
        XCTAssertEqual(nrc, 0, nlog)
        XCTAssertTrue(nlog.contains("0 runs of srch [smoke] in 2 shards"), nlog)
        // The Markdown says what the grid points' rows are (they sat beside the variants unmarked).
        let (mrc, md) = try runCLIText(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--data-dir", data], stdout: true)
        XCTAssertEqual(mrc, 0, md)
        XCTAssertTrue(md.contains("pts@lr=3.0") && md.contains("variants are search runs (grid points"), md)
        // The search is in the machine-readable outputs too (only the Markdown had it).
        let (jrc, json) = try runCLIText(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--format", "json", "--data-dir", data], stdout: true)
        XCTAssertEqual(jrc, 0, json)
        for text in [json, try String(contentsOfFile: "\(results)/srch-smoke.json", encoding: .utf8)] {
            let searches = (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["searches"] as? [[String: Any]]
            XCTAssertEqual(searches?.count, 1, text)
            XCTAssertTrue(["pts@lr=0.0003", "pts@lr=3.0"].contains(searches?.first?["chosen"] as? String ?? ""), text)
            XCTAssertEqual((searches?.first?["points"] as? [[String: Any]])?.count, 2, text)
            // Each grid point's cell says whose point it is; the variants' cells do not.
            let results = (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["results"] as? [String: [String: Any]]
            XCTAssertEqual(results?["pts@lr=3.0|cb|t5-small|k8"]?["grid_point_of"] as? String, "pts", text)
            XCTAssertEqual(results?["pts@lr=0.0003|cb|t5-small|k8"]?["grid_point_of"] as? String, "pts", text)
            XCTAssertNil(results?["pt|cb|t5-small|k8"]?["grid_point_of"], text)
            XCTAssertNil(results?["pts|cb|t5-small|k8"]?["grid_point_of"], text)
        }
        // And every csv row (only the Markdown marked them): the last column names the search.
        let (crc, csv) = try runCLIText(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--format", "csv", "--data-dir", data], stdout: true)
        XCTAssertEqual(crc, 0, csv)
        let rows = StoreTests.rfc4180(csv)
        XCTAssertEqual(rows.first?.last, "grid_point_of", csv)
        let marked = Dictionary(grouping: rows.dropFirst(), by: { $0[1] }).mapValues { Set($0.map { $0.last ?? "?" }) }
        XCTAssertEqual(marked, ["pt": [""], "pts": [""], "pts@lr=0.0003": ["pts"], "pts@lr=3.0": ["pts"]], csv)
        // lm-eval's and PEFT's files of a grid point name its search; a variant's do not.
        for (format, file, key) in [("lm-eval", "srch__smoke__pts@lr=3.0__t5-small__k8", "config"), ("peft-bench", "pts@lr=3.0_cb_t5-small_k8-s1.json", "run_info")] {
            let (erc, elog) = try runCLIText(["export", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--format", format, "--out", "\(dir)/\(format)",
                                              "--data-dir", data], stdout: false)
            XCTAssertEqual(erc, 0, elog)
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(format)")
            for f in files {
                // lm-eval: a folder per model, its one results file in it.
                let path = format == "lm-eval" ? "\(dir)/\(format)/\(f)/\(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(format)/\(f)")[0])" : "\(dir)/\(format)/\(f)"
                let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
                let owner = (obj?[key] as? [String: Any])?["grid_point_of"] as? String
                XCTAssertEqual(owner, f.contains("pts@") ? "pts" : nil, "\(format) \(f)")
            }
            XCTAssertTrue(files.contains(file), "\(files)")
        }
        // An --out into a folder that does not exist names the file and the folder (it printed the
        // NSError's dump).
        let (orc, olog) = try runCLIText(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--format", "csv", "--data-dir", data,
                                          "--out", "\(dir)/no/such/x.csv"], stdout: false)
        XCTAssertEqual(orc, 1, olog)
        XCTAssertTrue(olog.contains("Error: \(dir)/no/such/x.csv: ") && olog.contains("(its folder \(dir)/no/such does not exist)")
                      && !olog.contains("NSCocoaErrorDomain"), olog)
        let (frc, flog) = try runCLIText(["results", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--format", "csv", "--data-dir", data,
                                          "--out", "\(dir)/s.yaml/x.csv"], stdout: false)
        XCTAssertEqual(frc, 1, flog)
        XCTAssertTrue(flog.contains("Error: \(dir)/s.yaml/x.csv: ") && flog.contains("(\(dir)/s.yaml is not a folder)"), flog)
        // Read by name with no spec file of that name (a spec kept elsewhere), the grid points are
        // told by their names and said so (they were unmarked, and drawn on the Pareto front).
        let (nrc2, byName) = try runCLIText(["results", "srch", "--profile", "smoke", "--db", db, "--format", "csv", "--data-dir", data], stdout: true)
        XCTAssertEqual(nrc2, 0, byName)
        let named = Dictionary(grouping: StoreTests.rfc4180(byName).dropFirst(), by: { $0[1] }).mapValues { Set($0.map { $0.last ?? "?" }) }
        XCTAssertEqual(named, ["pt": [""], "pts": [""], "pts@lr=0.0003": ["pts"], "pts@lr=3.0": ["pts"]], byName)
        let (_, byNameErr) = try runCLIText(["results", "srch", "--profile", "smoke", "--db", db, "--format", "csv", "--data-dir", data], stdout: false)
        XCTAssertTrue(byNameErr.contains("no spec file: the 2 variants named NAME@KEY=value are taken for a search's grid points by their names"), byNameErr)
        // The Pareto figure leaves the grid points out (its front offered the best point by its
        // reported-split score) and says so.
        let (prc, plog) = try runCLIText(["report", "--pareto", "\(dir)/s.yaml", "--profile", "smoke", "--db", db, "--out-dir", "\(dir)/rep",
                                          "--data-dir", data], stdout: false)
        XCTAssertEqual(prc, 0, plog)
        XCTAssertTrue(plog.contains("2 cells of grid points of the search for 'pts' left out of the Pareto figure"), plog)
        let dat = try String(contentsOfFile: "\(dir)/rep/figures/pareto-srch.dat", encoding: .utf8)
        XCTAssertTrue(dat.contains("\"pts\"") && dat.contains("\"pt\"") && !dat.contains("pts@"), dat)
        func compare(_ specPath: String, _ extra: [String] = []) throws -> (Int32, String, String) {
            let (c, out) = try runCLIText(["compare", "--spec", specPath, "--method", "pts", "--baseline", "pt", "--profile", "smoke",
                                            "--db", "\(dir)/none.sqlite", "--results-dir", results, "--data-dir", data, "--allow-missing"] + extra, stdout: true)
            let (_, err) = try runCLIText(["compare", "--spec", specPath, "--method", "pts", "--baseline", "pt", "--profile", "smoke",
                                            "--db", "\(dir)/none.sqlite", "--results-dir", results, "--data-dir", data, "--allow-missing"] + extra, stdout: false)
            return (c, out, err)
        }
        let (_, same, sameErr) = try compare("\(dir)/s.yaml")
        XCTAssertTrue(same.contains("| cb |"), same + sameErr)
        XCTAssertFalse(sameErr.contains("left out"), sameErr)
        let (_, edited, editedErr) = try compare(try spec(dir, "e", n: 6))
        XCTAssertTrue(editedErr.contains("searched cells of") && editedErr.contains("the export's grid points do not decide their search under spec srch [smoke]")
                      && editedErr.contains("pts|cb|t5-small|k8"), editedErr)
        XCTAssertFalse(edited.contains("| cb | accuracy |"), edited)
    }

    /// Grid points told by their names where no spec file says which variants they are.
    func testGridPointsByName() {
        XCTAssertEqual(ExperimentSpec.gridPointOwners(byName: ["pts@lr=3.0", "dpt@lr=0.03,r=1", "pt", "a@b", "@x=1", "me@host", "v@k=", "w@=1", "x@a b=1"]),
                       ["pts@lr=3.0": "pts", "dpt@lr=0.03,r=1": "dpt", "v@k=": "v"])
    }

    /// A grid point is not a method to compare or gate on (it passed the gate on one seed).
    func testAGridPointIsRefusedAsAComparedMethod() throws {
        let dir = tempDir("searchpoint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for flag in ["--method", "--baseline"] {
            let args = flag == "--method" ? ["--method", "pts@lr=3.0", "--baseline", "pt"] : ["--method", "pt", "--baseline", "pts@lr=3.0"]
            let (rc, err) = try runCLIText(["compare", "--spec", try spec(dir, "s"), "--profile", "smoke", "--db", "\(dir)/none.sqlite"] + args, stdout: false)
            XCTAssertEqual(rc, 64, err)
            XCTAssertTrue(err.contains("\(flag) pts@lr=3.0 is a grid point of the search for 'pts'"), err)
        }
    }

    /// Grids that would not search what they say are refused at load: a key also fixed on the
    /// entry (its value was silently replaced), evaluation settings (points scored on other rows
    /// are not comparable), a value listed twice as numbers.
    func testGridsThatDoNotSearchAreRefused() throws {
        let dir = tempDir("searchgrid")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (grid, extra, expected) in [("{n: [2, 8]}", "", "'n' is set both on the entry and in search.grid"),
                                        ("{lr: [0.1, 0.3]}", ", train: {lr: 0.5}", "'lr' is set both on the entry and in search.grid"),
                                        ("{eval_limit: [4, 8]}", "", "'eval_limit' sets how many validation rows are scored, not a hyper-parameter to search"),
                                        ("{eval_mode: [rank, rank-mean]}", "", "'eval_mode' sets how predictions are made"),
                                        ("{lr: [0.0001, 1e-4]}", "", "lists the value 0.0001 twice (as numbers)")] {
            // The entry fixes n: 4, which the first grid varies.
            let path = try spec(dir, "g", grid: grid, extra: extra)
            XCTAssertThrowsError(try ExperimentSpec.load(path)) { XCTAssertTrue("\($0)".contains(expected), "\(grid): \($0)") }
        }
    }
}
