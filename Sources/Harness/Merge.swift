// Scale-out without sharing one SQLite file across machines (SQLite over NFS is unsafe): a sweep is
// split into shard stores, one per SLURM array task, each written only by its own worker; `merge`
// folds finished runs of the shards into the main store, one transaction per shard.
import Foundation
import Store
import Training

extension ResultsStore {
    /// Writes the runs of `runs` (one spec and profile's) into `shards` stores `dir/shard-<i>.sqlite`,
    /// round-robin (each new run to the shard holding fewest). Re-sharding into the same folder keeps
    /// every run in the shard that holds it already (a grown run list must not put one run in two
    /// shards); shard stores keep their finished runs, interrupted ones go back to pending, and the
    /// pending and failed runs `runs` no longer holds go to history, so that no shard worker trains
    /// them (as `sweep` does).
    public static func writeShards(_ runs: [RunSpec], shards: Int, dir: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let paths = (0..<shards).map { "\(dir)/shard-\($0).sqlite" }
        let stores = try paths.map { try ResultsStore(path: $0) }
        guard let first = runs.first else { return paths }
        func key(_ r: RunSpec) -> String { PlannedRuns.key(cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed) }
        var home: [String: Int] = [:]
        for (i, s) in stores.enumerated() {
            for row in try s.db.query("SELECT cell, seed, IFNULL(sample_seed, seed) AS sample_seed FROM runs WHERE spec=? AND profile=? AND status != 'superseded'",
                                      [.text(first.spec), .text(first.profile)]) {
                let k = PlannedRuns.key(cell: row["cell"]!.text!, seed: row["seed"]!.int!, sampleSeed: row["sample_seed"]!.int!)
                if home[k] == nil { home[k] = i }
            }
        }
        var share = [[RunSpec]](repeating: [], count: shards)
        for r in runs { if let i = home[key(r)] { share[i].append(r) } }
        for r in runs where home[key(r)] == nil { share[share.indices.min { share[$0].count < share[$1].count }!].append(r) }
        for (i, s) in stores.enumerated() {
            // A running run only goes back to pending when its worker is gone (a live worker's run
            // set to pending was claimed by a second worker and trained twice); before the runs are
            // planned, as `sweep` does, so that an interrupted run of other settings goes to history.
            try s.resetInterrupted()
            // No adoption here: a shard's workers train its runs (and keep their artifacts on
            // their machine); `sweep` adopts in the store it plans in.
            try s.insertPending(share[i], adopting: false)
            // Failed runs go back to pending.
            try s.db.query("UPDATE runs SET status='pending', worker=NULL, worker_pid=NULL WHERE status='failed'")
            try s.supersedeUnplanned(spec: first.spec, profile: first.profile, planned: PlannedRuns(runs: share[i]))
        }
        return paths
    }

    /// Copies finished runs (done / diverged / failed / evaluated) of `source` into this store with
    /// every column and their epochs, scores, predictions, step log and run metrics. A run already
    /// finished here is kept; a run here of another identity is superseded by the incoming one,
    /// unless it was created after it (the spec was edited since the shards were written) or the
    /// incoming run failed while the run here is done or diverged: then the incoming run is
    /// stored as 'superseded'.
    /// A run 'running' here is left to its worker (merge again once it is finished to settle it).
    /// An evaluated run (`eval --db`) never replaces a sweep's run, and a sweep's run replaces an
    /// evaluated one whatever their creation times, as `sweep` and `eval --db` rule.
    /// Identities that differ only by a part one side predates (`legacyIdentityMatch`: a store or
    /// shard written before the `task` part) are the same run, stored under the newer identity.
    /// Returns how many were merged.
    @discardableResult
    public func merge(from source: String) throws -> Int { try mergeReporting(from: source).merged }

    /// Throws, naming `path`, unless it is a results store (an SQLite file with a runs table):
    /// opening a file that is not a store would turn it into one (SQLite writes the schema into
    /// an empty file, migrations into a foreign one), so it is refused and left untouched.
    /// `allowNew`: an SQLite file without any table (a store not written yet) passes too, as a
    /// destination may; a source must hold a runs table.
    public static func requireStoreFile(_ path: String, allowNew: Bool = true, action: String = "nothing merged") throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw StoreError("\(path): a directory, not a results store (give the store's file, e.g. \((path as NSString).appendingPathComponent("results.sqlite"))); \(action)")
        }
        let head = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: path)).read(upToCount: 16)) ?? nil
        guard let head, head == Data("SQLite format 3\u{0}".utf8) else {
            throw StoreError("\(path): not a results store (\((head ?? Data()).isEmpty ? "empty file" : "no SQLite header")); \(action)")
        }
        // An SQLite file of other tables only (a store has `runs`; a new one no table yet).
        let tables = try ResultsStore(readOnlyPath: path).db.query("SELECT name FROM sqlite_master WHERE type='table'").compactMap { $0["name"]?.text }
        guard (allowNew && tables.isEmpty) || tables.contains("runs") else {
            throw StoreError("\(path): an SQLite file without a runs table (tables \(tables.sorted().joined(separator: ", "))), not a results store; \(action)")
        }
    }

    /// What a merge did: runs merged, and one line per run of this store the shard's run of other
    /// settings superseded (`replaced`) or per shard run stored as history because the run here was
    /// planned after it (`history`), each naming the identity parts that differ.
    public struct MergeReport {
        public var merged = 0
        /// The shard's runs not finished (pending or running: a worker that never ran or was
        /// stopped), by status; nothing of them is merged.
        public var unfinished: [String: Int] = [:]
        /// Finished runs of the shard not merged because the run here is `running` (merge again
        /// once its worker is done), one line each.
        public var leftRunning: [String] = []
        public var replaced: [String] = []
        public var history: [String] = []
        /// Finished runs of the shard of the same identity as a finished run here but run under
        /// other numerics (GEMM kernel, kc, OpenBLAS or thread count: `tool_version`, `threads`), not
        /// merged: the run here is kept, one line each naming both setups (two stores of the same
        /// spec run on hosts of different kernels kept the first one's runs without a word).
        public var keptOtherNumerics: [String] = []
    }

    /// `merge`, reporting which runs were replaced and why: a shard written from another spec file
    /// of the same name replaced good runs with only a count printed.
    public func mergeReporting(from source: String) throws -> MergeReport {
        // A store (an SQLite file with a runs table) is opened as ever, so a shard of an older
        // schema is migrated first (its child tables and columns are the current ones); anything
        // else is refused before it is opened (a foreign SQLite file once gained the store's tables).
        try Self.requireStoreFile(source, allowNew: false)
        let src = try ResultsStore(path: source)
        let rows = try src.db.query("SELECT * FROM runs WHERE status IN ('done','diverged','failed','evaluated') ORDER BY id")
        var unfinished: [String: Int] = [:]
        for r in try src.db.query("SELECT status, COUNT(*) AS n FROM runs WHERE status IN ('pending','running') GROUP BY status") {
            unfinished[r["status"]!.text!] = r["n"]!.int!
        }
        let runColumns = try copiedRunColumns()
        let childTables = ResultsStore.runRecordTables
        let childColumns = try Dictionary(uniqueKeysWithValues: childTables.map { ($0, try columns(of: $0).filter { $0 != "run_id" }) })
        // The top-level identity parts (config, data, weights, task, …) that differ between two rows.
        func differing(_ a: String?, _ b: String?) -> String {
            let pa = a.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            let pb = b.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            let keys = Set(pa.keys).union(pb.keys).filter { k in
                let x = pa[k].flatMap { try? JSONSerialization.data(withJSONObject: ["v": $0], options: [.sortedKeys]) }
                let y = pb[k].flatMap { try? JSONSerialization.data(withJSONObject: ["v": $0], options: [.sortedKeys]) }
                return x != y
            }.sorted()
            return keys.isEmpty ? "identity" : keys.joined(separator: ", ")
        }
        return try db.transaction {
            var report = MergeReport()
            report.unfinished = unfinished
            for r in rows {
                let seed = r["seed"]!.int!
                var history = false, r = r
                if var existing = try currentRun(spec: r["spec"]!.text!, profile: r["profile"]!.text!, cell: r["cell"]!.text!, seed: seed,
                                                 sampleSeed: r["sample_seed"]?.int ?? seed) {
                    // A row stored before an identity part existed is the same run as one with the
                    // part when the other parts agree (`legacyIdentityMatch`, as `insertPending`
                    // rules): whichever side is the older, both take the newer identity.
                    if let incoming = r["identity"]?.text, existing["identity"]?.text != incoming {
                        if let upgraded = Self.legacyIdentityMatch(stored: existing, newJSON: r["identity_json"]?.text) {
                            try db.query("UPDATE runs SET identity=?, identity_json=? WHERE id=?", [.text(incoming), .text(upgraded), existing["id"]!])
                            existing["identity"] = .text(incoming)
                        } else if let upgraded = Self.legacyIdentityMatch(stored: r, newJSON: existing["identity_json"]?.text) {
                            r["identity"] = existing["identity"]
                            r["identity_json"] = .text(upgraded)
                        }
                    }
                    // A run in progress here is left to its worker: replacing the row under it made
                    // the worker's result land in the shard's row (two executions in one row).
                    if existing["status"]?.text == "running" {
                        report.leftRunning.append("\(r["cell"]!.text!) seed \(seed)")
                        continue
                    }
                    let incomingEvaluated = r["status"]?.text == "evaluated", hereEvaluated = existing["status"]?.text == "evaluated"
                    if existing["identity"]?.text == r["identity"]?.text {
                        if ["done", "diverged", "evaluated"].contains(existing["status"]?.text ?? "") {
                            // A run without a recorded setup (an evaluated run stored before they
                            // were recorded) cannot be compared: not named as other numerics.
                            if r["status"]?.text != "failed",
                               let here = try db.query("SELECT tool_version, threads FROM runs WHERE id=?", [existing["id"]!]).first,
                               here["tool_version"]?.text != nil, r["tool_version"]?.text != nil,
                               !Trainer.numericsAgree(Self.numericsSetup(here), Self.numericsSetup(r)) {
                                report.keptOtherNumerics.append("\(r["cell"]!.text!) seed \(seed): kept the run here (\(Trainer.bitsOfNumerics(Self.numericsSetup(here))));"
                                                                + " the shard's ran under \(Trainer.bitsOfNumerics(Self.numericsSetup(r)))")
                            }
                            continue
                        }
                        try db.query("DELETE FROM runs WHERE id=?", [existing["id"]!])
                    } else if incomingEvaluated && !hereEvaluated {
                        // An evaluated adapter never takes a sweep's cell (`eval --db` refuses it):
                        // the shard's evaluated run joins as history.
                        history = true
                        report.history.append("\(r["cell"]!.text!) seed \(seed): kept the sweep's run here; the shard's evaluated adapter run joins as history (evaluate it under a variant of its own)")
                    } else if r["status"]?.text == "failed", ["done", "diverged"].contains(existing["status"]?.text ?? "") {
                        // A failed run measured nothing: it never takes the place of a finished run
                        // (a worker refused on its data's pin replaced good runs). If the settings
                        // changed, reads and `sweep` judge the kept run against the plan as ever.
                        history = true
                        report.history.append("\(r["cell"]!.text!) seed \(seed): kept the finished run here (\(existing["status"]!.text!)); the shard's run failed (it differs in \(differing(existing["identity_json"]?.text, r["identity_json"]?.text)))")
                    } else if !hereEvaluated && !incomingEvaluated,
                              try db.query("SELECT created_at FROM runs WHERE id=?", [existing["id"]!]).first?["created_at"]?.text ?? ""
                                > r["created_at"]?.text ?? "" {
                        // The run here was planned after the shard's (a spec edited since the shards
                        // were written): it stays, and the shard's joins as history.
                        history = true
                        report.history.append("\(r["cell"]!.text!) seed \(seed): kept the run planned here later; the shard's differs in \(differing(existing["identity_json"]?.text, r["identity_json"]?.text))")
                    } else {
                        try db.query("UPDATE runs SET superseded_status=status, status='superseded' WHERE id=?", [existing["id"]!])
                        report.replaced.append("\(r["cell"]!.text!) seed \(seed): the run here (\(existing["status"]?.text ?? "?")) went to history; the shard's differs in \(differing(existing["identity_json"]?.text, r["identity_json"]?.text))")
                    }
                }
                // Every column both stores have, by name (a column added to the schema later, such
                // as epochs_done or adapter_sha256, is copied without a change here), but not those
                // that only mean something on the shard's machine while a run is in progress.
                var row = r
                if history {
                    // Merging the same shard again adds it to history once only (merges are idempotent).
                    let known = try db.query("SELECT 1 FROM runs WHERE spec=? AND profile=? AND cell=? AND seed=? AND IFNULL(sample_seed, seed)=?"
                        + " AND status='superseded' AND identity IS ? AND created_at IS ? LIMIT 1",
                        [r["spec"]!, r["profile"]!, r["cell"]!, .int(seed), .int(r["sample_seed"]?.int ?? seed), r["identity"] ?? .null, r["created_at"] ?? .null])
                    if !known.isEmpty { report.history.removeLast(); continue }
                    row["superseded_status"] = r["status"]; row["status"] = .text("superseded")
                }
                let cols = runColumns.filter { row[$0] != nil }
                try db.query("INSERT INTO runs (\(cols.joined(separator: ","))) VALUES (\(cols.map { _ in "?" }.joined(separator: ",")))",
                             cols.map { row[$0]! })
                let id = db.lastInsertID, old = r["id"]!
                for table in childTables {
                    let tcols = childColumns[table]!
                    for row in try src.db.query("SELECT * FROM \(table) WHERE run_id=? ORDER BY rowid", [old]) {
                        let present = tcols.filter { row[$0] != nil }
                        try db.query("INSERT INTO \(table) (run_id,\(present.joined(separator: ","))) VALUES (?\(String(repeating: ",?", count: present.count)))",
                                     [.int(id)] + present.map { row[$0]! })
                    }
                }
                report.merged += 1
            }
            return report
        }
    }
}
