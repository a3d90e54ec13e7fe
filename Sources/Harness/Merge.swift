// Scale-out without sharing one SQLite file across machines (SQLite over NFS is unsafe): a sweep is
// split into shard stores, one per SLURM array task, each written only by its own worker; `merge`
// folds finished runs of the shards into the main store, one transaction per shard.
import Foundation
import Store

extension ResultsStore {
    /// Writes the runs of `runs` (one spec and profile's) round-robin into `shards` stores
    /// `dir/shard-<i>.sqlite` (existing shard stores keep their finished runs; interrupted ones go
    /// back to pending, and pending ones `runs` no longer holds to history).
    public static func writeShards(_ runs: [RunSpec], shards: Int, dir: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var paths: [String] = []
        for i in 0..<shards {
            let path = "\(dir)/shard-\(i).sqlite"
            let s = try ResultsStore(path: path)
            try s.insertPending(runs.enumerated().filter { $0.offset % shards == i }.map(\.element))
            try s.db.query("UPDATE runs SET status='pending', worker=NULL, worker_pid=NULL WHERE status IN ('running','failed')")
            // Re-sharding an edited spec into the same folder: the pending rows of runs it no longer
            // plans go to history, so that no shard worker trains them (as `sweep` does).
            if let r = runs.first { try s.supersedeUnplanned(spec: r.spec, profile: r.profile, planned: PlannedRuns(runs: runs)) }
            paths.append(path)
        }
        return paths
    }

    /// Copies finished runs (done / diverged / failed) of `source` into this store with their
    /// epochs, scores and predictions. A run already finished here is kept; returns how many were merged.
    @discardableResult
    public func merge(from source: String) throws -> Int {
        let src = try ResultsStore(path: source)
        let rows = try src.db.query("SELECT * FROM runs WHERE status IN ('done','diverged','failed') ORDER BY id")
        return try db.transaction {
            var merged = 0
            for r in rows {
                let seed = r["seed"]!.int!
                if let existing = try currentRun(spec: r["spec"]!.text!, profile: r["profile"]!.text!, cell: r["cell"]!.text!, seed: seed,
                                                 sampleSeed: r["sample_seed"]?.int ?? seed) {
                    if existing["identity"]?.text == r["identity"]?.text {
                        if ["done", "diverged"].contains(existing["status"]?.text ?? "") { continue }
                        try db.query("DELETE FROM runs WHERE id=?", [existing["id"]!])
                    } else {
                        try db.query("UPDATE runs SET status='superseded' WHERE id=?", [existing["id"]!])
                    }
                }
                let cols = ["spec", "profile", "cell", "variant", "method", "task", "model", "model_spec", "k", "seed", "config_json",
                            "config_hash", "status", "attempts", "worker", "weights_sha256", "data_hashes", "manifest", "trainable_params",
                            "git_commit", "tool_version", "threads", "host", "created_at", "started_at", "finished_at", "error", "diverged_step",
                            "identity", "identity_json", "task_version", "sample_seed"]
                try db.query("INSERT INTO runs (\(cols.joined(separator: ","))) VALUES (\(cols.map { _ in "?" }.joined(separator: ",")))",
                             cols.map { r[$0] ?? .null })
                let id = db.lastInsertID, old = r["id"]!
                for e in try src.db.query("SELECT * FROM epochs WHERE run_id=?", [old]) {
                    try db.query("INSERT INTO epochs VALUES (?,?,?,?,?,?,?)",
                                 [.int(id), e["epoch"]!, e["step"]!, e["train_loss"] ?? .null, e["metrics_json"]!, e["selection"] ?? .null,
                                  e["seconds"] ?? .null])
                }
                for m in try src.db.query("SELECT * FROM epoch_metrics WHERE run_id=? ORDER BY epoch, name", [old]) {
                    try db.query("INSERT INTO epoch_metrics VALUES (?,?,?,?)", [.int(id), m["epoch"]!, m["name"]!, m["value"]!])
                }
                for s in try src.db.query("SELECT * FROM scores WHERE run_id=? ORDER BY kind, metric", [old]) {
                    try db.query("INSERT INTO scores VALUES (?,?,?,?,?)", [.int(id), s["kind"]!, s["metric"]!, s["value"]!, s["epoch"] ?? .null])
                }
                for p in try src.db.query("SELECT * FROM predictions WHERE run_id=? ORDER BY kind, position", [old]) {
                    try db.query("INSERT INTO predictions (run_id, kind, position, prediction) VALUES (?,?,?,?)",
                                 [.int(id), p["kind"] ?? .text("last"), p["position"]!, p["prediction"]!])
                }
                for st in try src.db.query("SELECT * FROM steps WHERE run_id=? ORDER BY step", [old]) {
                    try db.query("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?)",
                                 [.int(id), st["step"]!, st["epoch"]!, st["loss"]!, st["lr_json"]!, st["grad_norm"]!, st["grad_norms_json"]!,
                                  st["param_norms_json"]!, st["seconds"]!])
                }
                for m in try src.db.query("SELECT * FROM run_metrics WHERE run_id=? ORDER BY name", [old]) {
                    try db.query("INSERT INTO run_metrics VALUES (?,?,?)", [.int(id), m["name"]!, m["value"]!])
                }
                merged += 1
            }
            return merged
        }
    }
}
