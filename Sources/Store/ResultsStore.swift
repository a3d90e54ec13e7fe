// The results store: runs with full provenance, per-epoch metrics, best/last scores, per-example
// predictions. Every write is one transaction; runs move
// pending → running → done | failed | diverged, and a claim is atomic (BEGIN IMMEDIATE).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Support
import Training

public struct RunSpec: Equatable, Sendable {
    public var spec: String
    public var profile: String
    public var cell: String
    public var variant: String
    public var method: String
    public var task: String
    public var model: String      // model column as the paper names it (t5-small, …)
    public var modelSpec: String  // what is loaded (directory, hub id, embedded:NAME)
    public var k: Int?
    public var seed: Int
    /// The few-shot sample's seed when a spec crosses `sample_seeds` with `seeds` (nil: `seed`).
    public var sampleSeed: Int?
    public var config: TrainConfig
    /// sha256 of everything that can move the run's numbers (`RunIdentity`); nil: the config's hash.
    public var identity: String?
    /// The identity's parts (JSON object, sorted keys), stored beside it.
    public var identityJSON: String?
    public var taskVersion: Int?

    public init(spec: String, profile: String, cell: String, variant: String, method: String, task: String, model: String,
                modelSpec: String, k: Int?, seed: Int, sampleSeed: Int? = nil, config: TrainConfig) {
        self.spec = spec; self.profile = profile; self.cell = cell; self.variant = variant; self.method = method
        self.task = task; self.model = model; self.modelSpec = modelSpec; self.k = k; self.seed = seed; self.sampleSeed = sampleSeed
        self.config = config
    }

    /// The run within its cell (training seed, sample seed).
    public var replicate: Replicate { Replicate(seed: seed, sampleSeed: sampleSeed) }

    /// A cell's id: "variant|task|model column|k<k>" ("kfull" without k); seeds are runs within it.
    public static func cellName(variant: String, task: String, model: String, k: Int?) -> String {
        "\(variant)|\(task)|\(model)|k\(k.map(String.init) ?? "full")"
    }

    /// Characters a model column may not hold: "|" separates a cell name's parts and "#" a run
    /// key's (`PlannedRuns.key`); a name holding one made two cells share a key.
    public static let reservedInColumn: Set<Character> = ["|", "#"]
    /// Characters a variant name may not hold: `reservedInColumn`, and "@", which names a
    /// search's grid points (NAME@KEY=value).
    public static let reservedInVariant: Set<Character> = reservedInColumn.union(["@"])
}

public struct ClaimedRun {
    public let id: Int
    public let spec: RunSpec
    public let attempts: Int
}

/// A worker's claim on a run was taken over since it claimed it (its worker looked dead: another
/// host's heartbeat older than the limit, a stopped or suspended process) and the run claimed
/// again: the current claim's worker stores the run; this one's result is not stored.
public struct ClaimTakenOver: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public final class ResultsStore {
    public let db: SQLiteDB
    /// Run states. `superseded`: a finished or failed run whose identity (spec, data, weights, task
    /// version…) no longer matches the spec; kept for the record, never counted in a table.
    /// `evaluated`: scores of an adapter trained elsewhere (`eval --adapter`), counted like `done`.
    public static let statuses = ["pending", "running", "done", "failed", "diverged", "superseded", "evaluated"]

    public static let migrations: [String] = [
        // v1
        """
        CREATE TABLE runs (
          id INTEGER PRIMARY KEY,
          spec TEXT NOT NULL, profile TEXT NOT NULL, cell TEXT NOT NULL, variant TEXT NOT NULL,
          method TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, model_spec TEXT NOT NULL,
          k INTEGER, seed INTEGER NOT NULL, config_json TEXT NOT NULL, config_hash TEXT NOT NULL,
          status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed','diverged')),
          attempts INTEGER NOT NULL DEFAULT 0,
          worker TEXT, worker_pid INTEGER, heartbeat REAL,
          weights_sha256 TEXT, data_hashes TEXT, manifest TEXT, trainable_params INTEGER,
          git_commit TEXT, tool_version TEXT, threads INTEGER, host TEXT,
          created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
          error TEXT, diverged_step INTEGER, checkpoint TEXT,
          UNIQUE (spec, profile, cell, seed)
        );
        CREATE INDEX runs_status ON runs(status);
        CREATE TABLE epochs (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL, step INTEGER NOT NULL,
          train_loss REAL, metrics_json TEXT NOT NULL, selection REAL,
          probe_positive INTEGER, probe_negative INTEGER, probe_rank INTEGER, seconds REAL,
          PRIMARY KEY (run_id, epoch)
        );
        CREATE TABLE scores (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, kind TEXT NOT NULL CHECK (kind IN ('best','last')),
          metric TEXT NOT NULL, value REAL NOT NULL, epoch INTEGER,
          PRIMARY KEY (run_id, kind, metric)
        );
        CREATE TABLE predictions (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, position INTEGER NOT NULL,
          prediction TEXT NOT NULL, PRIMARY KEY (run_id, position)
        );
        CREATE TABLE published (
          paper TEXT NOT NULL, tbl TEXT NOT NULL, row TEXT NOT NULL, col TEXT NOT NULL,
          value REAL NOT NULL, unit TEXT, source TEXT, PRIMARY KEY (paper, tbl, row, col)
        );
        CREATE TABLE weights_hashes (path TEXT PRIMARY KEY, size INTEGER, mtime REAL, sha256 TEXT);
        """,
        // v2: run identity (a cell is rerun when anything that moves its numbers changes; the old
        // row is kept as 'superseded'), task version, and the per-step training log.
        """
        CREATE TABLE runs_v2 (
          id INTEGER PRIMARY KEY,
          spec TEXT NOT NULL, profile TEXT NOT NULL, cell TEXT NOT NULL, variant TEXT NOT NULL,
          method TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, model_spec TEXT NOT NULL,
          k INTEGER, seed INTEGER NOT NULL, config_json TEXT NOT NULL, config_hash TEXT NOT NULL,
          status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed','diverged','superseded','evaluated')),
          attempts INTEGER NOT NULL DEFAULT 0,
          worker TEXT, worker_pid INTEGER, heartbeat REAL,
          weights_sha256 TEXT, data_hashes TEXT, manifest TEXT, trainable_params INTEGER,
          git_commit TEXT, tool_version TEXT, threads INTEGER, host TEXT,
          created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
          error TEXT, diverged_step INTEGER, checkpoint TEXT,
          identity TEXT NOT NULL, identity_json TEXT, task_version INTEGER, adapter_sha256 TEXT
        );
        INSERT INTO runs_v2 SELECT *, config_hash, NULL, NULL, NULL FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_v2 RENAME TO runs;
        CREATE INDEX runs_status ON runs(status);
        CREATE UNIQUE INDEX runs_current ON runs(spec, profile, cell, seed) WHERE status != 'superseded';
        CREATE TABLE predictions_v2 (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, kind TEXT NOT NULL DEFAULT 'last' CHECK (kind IN ('best','last')),
          position INTEGER NOT NULL, prediction TEXT NOT NULL, PRIMARY KEY (run_id, kind, position)
        );
        INSERT INTO predictions_v2 SELECT run_id, 'last', position, prediction FROM predictions;
        DROP TABLE predictions;
        ALTER TABLE predictions_v2 RENAME TO predictions;
        CREATE TABLE steps (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
          loss REAL NOT NULL, lr_json TEXT NOT NULL, grad_norm REAL NOT NULL, grad_norms_json TEXT NOT NULL,
          param_norms_json TEXT NOT NULL, seconds REAL NOT NULL,
          PRIMARY KEY (run_id, step)
        );
        """,
        // v3: progress of a running run (written by its worker after each epoch's checkpoint), so a
        // sweep's ETA counts partly trained runs.
        """
        ALTER TABLE runs ADD COLUMN epochs_done INTEGER;
        ALTER TABLE runs ADD COLUMN epochs_total INTEGER;
        ALTER TABLE runs ADD COLUMN epoch_seconds REAL;
        """,
        // v4: protocol variants. `sample_seed` is the few-shot sample's seed when it differs from the
        // training seed (NULL: the paper protocol, one seed for both), so a cell holds every
        // (sample seed, seed) pair; `run_metrics` holds per-run measurements that are not scores
        // (efficiency, invalid-output fraction, selection details), one row per name.
        """
        ALTER TABLE runs ADD COLUMN sample_seed INTEGER;
        DROP INDEX runs_current;
        CREATE UNIQUE INDEX runs_current ON runs(spec, profile, cell, seed, IFNULL(sample_seed, seed)) WHERE status != 'superseded';
        CREATE TABLE run_metrics (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL NOT NULL,
          PRIMARY KEY (run_id, name)
        );
        """,
        // v5: the `published` table goes: published numbers are read from Baselines/published/*.csv
        // (committed data), and nothing read the copy in the store.
        """
        DROP TABLE IF EXISTS published;
        """,
        // v6: per-epoch measurements of a method (the rank probe's counts) move from three columns
        // of `epochs` to a generic `epoch_metrics` table (one row per name), existing values kept.
        """
        CREATE TABLE epoch_metrics (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
          PRIMARY KEY (run_id, epoch, name)
        );
        INSERT INTO epoch_metrics SELECT run_id, epoch, 'probe_positive', probe_positive FROM epochs WHERE probe_positive IS NOT NULL;
        INSERT INTO epoch_metrics SELECT run_id, epoch, 'probe_negative', probe_negative FROM epochs WHERE probe_negative IS NOT NULL;
        INSERT INTO epoch_metrics SELECT run_id, epoch, 'probe_rank', probe_rank FROM epochs WHERE probe_rank IS NOT NULL;
        CREATE TABLE epochs_v6 (
          run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL, step INTEGER NOT NULL,
          train_loss REAL, metrics_json TEXT NOT NULL, selection REAL, seconds REAL,
          PRIMARY KEY (run_id, epoch)
        );
        INSERT INTO epochs_v6 SELECT run_id, epoch, step, train_loss, metrics_json, selection, seconds FROM epochs;
        DROP TABLE epochs;
        ALTER TABLE epochs_v6 RENAME TO epochs;
        """,
        // v7: the status a row had when it went to history, so that a finished run of the identity a
        // spec plans again (an edit reverted) is taken back instead of trained anew.
        """
        ALTER TABLE runs ADD COLUMN superseded_status TEXT;
        """,
        // v8: where a run adopted from another spec, profile or variant ran (`insertPending`):
        // "SPEC [PROFILE] CELL seed N" (and " (sample S)"); NULL for a run trained under its own
        // row. Runs are looked up by identity when a sweep plans them.
        """
        ALTER TABLE runs ADD COLUMN adopted_from TEXT;
        CREATE INDEX IF NOT EXISTS runs_identity ON runs(identity);
        """,
    ]

    /// True when opened with `readOnly`: nothing is migrated or written (file-hash cache included).
    public let readOnly: Bool
    /// Whether `fileHash` adds what it hashes to the store's cache (`weights_hashes`); false for a
    /// read-only store and for the read commands (`forReading`), so that a read leaves the store's
    /// bytes as they were (it wrote cache rows after a new k, seed, data directory or model path).
    public var cachesFileHashes = true

    /// Opens (creating when absent or empty) the store at `path` and migrates it to the current
    /// schema. A non-empty file is first checked read-only (`init(readOnlyPath:)`): another
    /// program's database is refused before anything is written to it (opening it read-write
    /// would switch it to WAL and add this schema's tables beside its own).
    public init(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        if path != ":memory:", let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > 0 {
            _ = try ResultsStore(readOnlyPath: path)
        }
        db = try SQLiteDB(path: path)
        readOnly = false
        try migrate()
    }

    /// Opens the store at `path` for a command that only reads it (`results`, `report`, `compare`,
    /// `export`, `figures`, `steps`): as `init(path:)` where the store and its directory can both
    /// be written; read-only (`init(readOnlyPath:)`) where either cannot (a read-only file system, a
    /// copy without write permission: SQLite's WAL mode needs the directory for its -wal and -shm
    /// files), which cannot migrate: a store of an older schema is then refused by name.
    /// - Throws: `StoreError` naming the store.
    public static func forReading(path: String) throws -> ResultsStore {
        // An empty file, or an SQLite file without tables, holds no runs: a read neither makes it
        // a store (it wrote the schema into it, and a later merge of it then "merged 0 runs") nor
        // reads it as one. A store copied without its -wal file after an unclean stop can be such
        // a file: its runs are in the log until a clean close.
        if path != ":memory:" {
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
            var empty = size == 0
            if !empty, let probe = try? SQLiteDB(path: path, readOnly: true),
               let n = try? probe.query("SELECT COUNT(*) AS n FROM sqlite_master").first?["n"]?.int, n == 0,
               (try? probe.query("PRAGMA user_version").first?["user_version"]?.int) == 0 {
                empty = true
            }
            if empty {
                throw StoreError("\(path): \(size == 0 ? "an empty file" : "an SQLite file without tables"), not a results store: "
                    + "no runs to read (a store copied without its -wal file after an unclean stop? the runs are in that file); left untouched")
            }
        }
        let dir = (path as NSString).deletingLastPathComponent
        guard path != ":memory:", access(path, W_OK) != 0 || access(dir.isEmpty ? "." : dir, W_OK) != 0 else {
            let s = try ResultsStore(path: path)
            s.cachesFileHashes = false  // a read writes nothing but a migration
            return s
        }
        let s = try ResultsStore(readOnlyPath: path)
        guard s.schemaVersion == ResultsStore.migrations.count else {
            throw StoreError("\(path): schema version \(s.schemaVersion) needs migrating to \(ResultsStore.migrations.count), which writes to it, "
                + "and the store cannot be written here (read-only file system or permissions). Copy it to a writable place and rerun")
        }
        return s
    }

    /// Opens an existing store without writing to it (`sweep --dry-run`); it is not migrated, so
    /// callers check `schemaVersion` before reading columns newer than v1. Refuses a file that is
    /// not a results store (tables or views without a store's schema version, runs/epochs/scores
    /// tables and run columns) and a store of a newer schema.
    public init(readOnlyPath path: String) throws {
        db = try SQLiteDB(path: path, readOnly: true)
        readOnly = true
        // A store has a schema version and the tables migration 1 made, its runs table with the
        // run columns; anything else in the file (another program's tables or views, whatever its
        // user_version) is not a store, checked before the version (a foreign file's high
        // user_version once read as "upgrade promptrepro").
        let objects = try db.query("SELECT name, type FROM sqlite_master WHERE type IN ('table','view')")
        let tables = Set(objects.filter { $0["type"]?.text == "table" }.compactMap { $0["name"]?.text })
        var isStore = false
        if schemaVersion > 0, tables.isSuperset(of: ["runs", "epochs", "scores"]) {
            let columns = Set(try db.query("PRAGMA table_info(runs)").compactMap { $0["name"]?.text })
            isStore = columns.isSuperset(of: ["spec", "profile", "cell", "seed", "config_json", "status"])
        }
        if !isStore && !(schemaVersion == 0 && objects.isEmpty) {
            let names = objects.compactMap { $0["name"]?.text }.sorted()
            throw StoreError("\(db.path): an SQLite file with \(names.isEmpty ? "no tables" : "tables or views \(names.joined(separator: ", "))")"
                + " and schema version \(schemaVersion), not a results store; left untouched (use another store path)")
        }
        guard schemaVersion <= ResultsStore.migrations.count else {
            throw StoreError("\(db.path): schema version \(schemaVersion) is newer than this tool (\(ResultsStore.migrations.count)); upgrade promptrepro")
        }
    }

    public var schemaVersion: Int { (try? db.query("PRAGMA user_version").first?["user_version"]?.int) ?? 0 }

    func migrate() throws {
        let current = schemaVersion
        guard current <= ResultsStore.migrations.count else {
            throw StoreError("\(db.path): schema version \(current) is newer than this tool (\(ResultsStore.migrations.count)); upgrade promptrepro")
        }
        guard current < ResultsStore.migrations.count else { return }
        // Rebuilding `runs` must not cascade into its child tables (the pragma is a no-op inside a transaction).
        try db.exec("PRAGMA foreign_keys=OFF")
        defer { try? db.exec("PRAGMA foreign_keys=ON") }
        for v in current..<ResultsStore.migrations.count {
            try db.transaction {
                // Another process (a worker, a test polling the store) may have migrated since the
                // version was read: the version is read again under the write lock.
                guard schemaVersion == v else { return }
                try db.exec(ResultsStore.migrations[v])
                try db.exec("PRAGMA user_version = \(v + 1)")
            }
        }
    }

    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    // MARK: runs

    /// Inserts runs that are not yet in the store; returns how many were new. A cell and seed whose
    /// current row has another identity (the spec, data, weights or task changed) gets a new pending
    /// row; the old one is kept as 'superseded' (a running one is left alone: its worker finishes it,
    /// and the next sweep supersedes it). A finished run of the same identity is taken back from
    /// history or (`adopting`) copied from another spec, profile or cell name instead of planned
    /// (`insertPendingReporting`); neither counts as new.
    @discardableResult
    public func insertPending(_ runs: [RunSpec], adopting: Bool = true) throws -> Int {
        try insertPendingReporting(runs, adopting: adopting ? { _, _ in true } : nil).inserted
    }

    /// The current (not superseded) row of a run — `id`, `identity`, `identity_json`, `status` — keyed as the
    /// `runs_current` index is: spec, profile, cell, seed and sample seed (a NULL sample seed is the seed).
    public func currentRun(spec: String, profile: String, cell: String, seed: Int, sampleSeed: Int) throws -> [String: SQLiteDB.Value]? {
        try db.query("""
            SELECT id, identity, identity_json, status FROM runs
            WHERE spec=? AND profile=? AND cell=? AND seed=? AND IFNULL(sample_seed, seed)=? AND status != 'superseded'
            """, [.text(spec), .text(profile), .text(cell), .int(seed), .int(sampleSeed)]).first
    }

    /// The identity parts added after a row could have been stored ("task": the task file's labels,
    /// metrics and reader, RunIdentity.taskParts; "model_files": the checkpoint's config.json, shard
    /// index and tokenizer files).
    static let addedIdentityParts = ["task", "model_files"]

    /// `newJSON` when the stored row's identity is `newJSON`'s without the parts it predates
    /// (`addedIdentityParts`), else nil.
    public static func legacyIdentityMatch(stored cur: [String: SQLiteDB.Value], newJSON: String?) -> String? {
        guard let newJSON, let storedID = cur["identity"]?.text, let storedJSON = cur["identity_json"]?.text,
              let old = (try? JSONSerialization.jsonObject(with: Data(storedJSON.utf8))) as? [String: Any],
              var new = (try? JSONSerialization.jsonObject(with: Data(newJSON.utf8))) as? [String: Any] else { return nil }
        let missing = addedIdentityParts.filter { old[$0] == nil && new[$0] != nil }
        guard !missing.isEmpty else { return nil }
        // A rule the part carries that changed the run itself is no legacy difference: MultiRC
        // under val-half, halved by rows before `task.val_half` (RunIdentity.taskParts).
        if missing.contains("task"), (new["task"] as? [String: Any])?["val_half"] != nil { return nil }
        for k in missing { new[k] = nil }
        guard let data = try? JSONSerialization.data(withJSONObject: new, options: [.sortedKeys]) else { return nil }
        return sha256Hex(String(decoding: data, as: UTF8.self)) == storedID ? newJSON : nil
    }

    /// The statuses, as an SQL list, a run in history had when `insertPending` takes it back (a
    /// finished result) rather than training its identity again; `sweep --dry-run` asks the same.
    public static let restorableSQL = "('done','diverged')"

    /// A finished run (done or diverged; current or in history) of `r`'s identity and model column
    /// stored under another key (spec, profile, cell, seed, sample seed): the run `insertPending`
    /// adopts instead of training `r`, and `sweep --dry-run` names. Runs trained under their own
    /// row first (not adopted themselves), then current rows, then the newest. The model column
    /// must match as well: the identity hashes the checkpoint, and a column another checkpoint
    /// stands in for stores column-dependent metrics (`paper_params`). nil when `r` has no
    /// computed identity (the config hash alone does not cover data, weights and task) or the
    /// store predates identities (schema v2); before the history status (v7) current rows only.
    public func finishedTwin(of r: RunSpec) throws -> [String: SQLiteDB.Value]? { try finishedTwins(of: r, limit: 1).first }

    /// Every `finishedTwin` candidate of `r`, in its order (up to `limit`): the sweep adopts the
    /// first whose artifact it finds (`SweepOptions.adoptable`).
    public func finishedTwins(of r: RunSpec, limit: Int = 50) throws -> [[String: SQLiteDB.Value]] {
        let version = schemaVersion
        guard let identity = r.identity, r.identityJSON != nil, version >= 2 else { return [] }
        let finished = version >= 7 ? "(status IN ('done','diverged') OR (status='superseded' AND superseded_status IN ('done','diverged')))"
                                    : "status IN ('done','diverged')"
        let sample = version >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
        let order = (version >= 8 ? "(adopted_from IS NOT NULL), " : "") + "(status = 'superseded'), id DESC"
        return try db.query("""
            SELECT * FROM runs WHERE identity=? AND model=? AND \(finished)
              AND NOT (spec=? AND profile=? AND cell=? AND seed=? AND \(sample)=?)
            ORDER BY \(order) LIMIT \(max(1, limit))
            """, [.text(identity), .text(r.model), .text(r.spec), .text(r.profile), .text(r.cell), .int(r.seed), .int(r.replicate.sampleSeed)])
    }

    /// Where a finished run `twin` (a row of `finishedTwin`) ran: "SPEC [PROFILE] CELL seed N"
    /// (" (sample S)" where the sample seed differs), or the `adopted_from` of a twin that was
    /// itself adopted (the run that trained, not a copy).
    public static func adoptionSource(_ twin: [String: SQLiteDB.Value]) -> String {
        if let from = twin["adopted_from"]?.text { return from }
        let seed = twin["seed"]?.int ?? 0, sample = twin["sample_seed"]?.int ?? seed
        return "\(twin["spec"]?.text ?? "?") [\(twin["profile"]?.text ?? "?")] \(twin["cell"]?.text ?? "?") seed \(seed)"
            + (sample == seed ? "" : " (sample \(sample))")
    }

    /// The tables holding a run's records, keyed by `run_id`: what a copy of a run (`adopt`,
    /// `merge`) copies with its row.
    public static let runRecordTables = ["epochs", "epoch_metrics", "scores", "predictions", "steps", "run_metrics"]

    /// The columns of `runs` a copy of a run carries: all but its row id and those that only mean
    /// something while a worker on one machine runs it (`worker_pid`, `heartbeat`, `checkpoint`).
    public func copiedRunColumns() throws -> [String] {
        try columns(of: "runs").filter { !["id", "worker_pid", "heartbeat", "checkpoint"].contains($0) }
    }

    /// The column names of `table` in this store's schema, in order (PRAGMA table_info).
    public func columns(of table: String) throws -> [String] {
        try db.query("PRAGMA table_info(\(table))").compactMap { $0["name"]?.text }
    }

    /// The status a stored run finished with: its own, or for a row in history the one it had
    /// when it went there (`superseded_status`).
    public static func finishedStatus(_ row: [String: SQLiteDB.Value]) -> String? {
        row["status"]?.text == "superseded" ? row["superseded_status"]?.text : row["status"]?.text
    }

    /// Copies the finished run `twin` (a row of `finishedTwin`) with its records (epochs, scores,
    /// predictions, steps, run and epoch metrics) as the current row of `r`: its spec, profile,
    /// cell and variant, created now, `adopted_from` naming the source (`adoptionSource`). Inside
    /// the caller's transaction.
    func adopt(_ twin: [String: SQLiteDB.Value], as r: RunSpec) throws {
        var row = twin
        row["spec"] = .text(r.spec); row["profile"] = .text(r.profile); row["cell"] = .text(r.cell)
        row["variant"] = .text(r.variant); row["model_spec"] = .text(r.modelSpec)
        row["created_at"] = .text(ResultsStore.now())
        row["status"] = Self.finishedStatus(twin).map { .text($0) } ?? .null
        row["superseded_status"] = .null
        row["adopted_from"] = .text(Self.adoptionSource(twin))
        let cols = try copiedRunColumns().filter { row[$0] != nil }
        try db.query("INSERT INTO runs (\(cols.joined(separator: ","))) VALUES (\(cols.map { _ in "?" }.joined(separator: ",")))", cols.map { row[$0]! })
        let id = db.lastInsertID
        for table in Self.runRecordTables {
            let tcols = try columns(of: table).filter { $0 != "run_id" }
            try db.query("INSERT INTO \(table) (run_id, \(tcols.joined(separator: ","))) SELECT ?, \(tcols.joined(separator: ",")) FROM \(table) WHERE run_id=?",
                         [.int(id), twin["id"]!])
        }
    }

    /// `insertPending`, also returning how many old rows were superseded, how many finished runs
    /// of the same identity came back from history (`restored`: a spec edited and then reverted
    /// retrained runs whose results were stored) and how many were adopted from another spec,
    /// profile or cell name (`adopted`: a new method's spec listing a stored spec's baselines with
    /// the same settings trained them again), each with the row it was copied from; `adopting`
    /// decides per run and source (nil: none is adopted; the sweep refuses a source whose artifact
    /// its run would lack). A pending or failed row of the planned identity gives way to a
    /// finished twin too (an earlier sweep of the spec interrupted before adoption existed).
    /// `refused`: runs that had finished twins none of which `adopting` accepted (planned instead).
    /// `held`: runs whose cell and seed a running row of other settings holds (a live worker of
    /// another sweep of the spec, before an edit): neither planned nor superseded here, so this
    /// plan's run of them is still to do when that worker finishes.
    public func insertPendingReporting(_ runs: [RunSpec], adopting: ((RunSpec, [String: SQLiteDB.Value]) -> Bool)? = { _, _ in true })
        throws -> (inserted: Int, superseded: Int, restored: Int, adopted: [(run: RunSpec, source: [String: SQLiteDB.Value])], refused: [RunSpec], held: [RunSpec]) {
        try db.transaction {
            var n = 0, old = 0, back = 0
            var adopted: [(run: RunSpec, source: [String: SQLiteDB.Value])] = [], refused: [RunSpec] = [], held: [RunSpec] = []
            // Adopts the first finished twin of `r` that `adopting` accepts, the row `replacing`
            // (a pending or failed one of the planned identity) going to history; false when none.
            func adoptTwin(_ r: RunSpec, replacing current: SQLiteDB.Value? = nil) throws -> Bool {
                guard let adopting else { return false }
                let candidates = try finishedTwins(of: r)
                guard let t = candidates.first(where: { adopting(r, $0) }) else {
                    if !candidates.isEmpty { refused.append(r) }
                    return false
                }
                if let current { try db.query("UPDATE runs SET superseded_status=status, status='superseded' WHERE id=?", [current]) }
                try adopt(t, as: r)
                adopted.append((r, t))
                return true
            }
            for r in runs {
                let json = r.config.json
                let identity = r.identity ?? sha256Hex(json)
                if let cur = try currentRun(spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed) {
                    let givesWay = ["pending", "failed"].contains(cur["status"]?.text ?? "")
                    if cur["identity"]?.text == identity, givesWay, try adoptTwin(r, replacing: cur["id"]) { continue }
                    if cur["identity"]?.text == identity { continue }
                    if cur["status"]?.text == "running" {
                        if Self.legacyIdentityMatch(stored: cur, newJSON: r.identityJSON) == nil { held.append(r) }
                        continue
                    }
                    // A row stored before an identity part existed (its identity JSON lacks it) is the
                    // same run when the other parts agree: it takes the new identity, not a rerun.
                    if let upgraded = Self.legacyIdentityMatch(stored: cur, newJSON: r.identityJSON) {
                        try db.query("UPDATE runs SET identity=?, identity_json=? WHERE id=?", [.text(identity), .text(upgraded), cur["id"]!])
                        // Now of the planned identity: a pending or failed row gives way as above.
                        if givesWay { _ = try adoptTwin(r, replacing: cur["id"]) }
                        continue
                    }
                    try db.query("UPDATE runs SET superseded_status=status, status='superseded' WHERE id=?", [cur["id"]!])
                    old += 1
                }
                // A finished run of exactly this identity in history (a spec edited, then reverted;
                // the identity covers everything that moves the numbers) is the result: it becomes
                // current again, with the status it had, instead of a rerun. Rows sent to history
                // before the status was kept (schema v7) are not taken back.
                if let prior = try db.query("""
                    SELECT id, superseded_status FROM runs
                    WHERE spec=? AND profile=? AND cell=? AND seed=? AND IFNULL(sample_seed, seed)=? AND status='superseded' AND identity=?
                      AND superseded_status IN \(ResultsStore.restorableSQL)
                    ORDER BY id DESC LIMIT 1
                    """, [.text(r.spec), .text(r.profile), .text(r.cell), .int(r.seed), .int(r.replicate.sampleSeed), .text(identity)]).first {
                    // Planned now: created_at is the time of this plan (merge ranks runs by it; the
                    // old time made a stale shard's run look newer).
                    try db.query("UPDATE runs SET status=superseded_status, superseded_status=NULL, created_at=? WHERE id=?",
                                 [.text(ResultsStore.now()), prior["id"]!])
                    back += 1
                    continue
                }
                // A finished run of exactly this identity under another spec, profile or cell name
                // (a new method's spec listing a stored spec's baselines with the same settings):
                // the identity covers everything that moves the numbers, so it is copied here with
                // its records instead of trained again; `adopted_from` names where it ran.
                if try adoptTwin(r) { continue }
                try db.query("""
                    INSERT INTO runs (spec, profile, cell, variant, method, task, model, model_spec, k, seed, config_json,
                                      config_hash, created_at, identity, identity_json, task_version, sample_seed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                    """, [.text(r.spec), .text(r.profile), .text(r.cell), .text(r.variant), .text(r.method), .text(r.task), .text(r.model),
                          .text(r.modelSpec), r.k.map { .int($0) } ?? .null, .int(r.seed), .text(json), .text(sha256Hex(json)),
                          .text(ResultsStore.now()), .text(identity), r.identityJSON.map { .text($0) } ?? .null,
                          r.taskVersion.map { .int($0) } ?? .null, r.sampleSeed.map { .int($0) } ?? .null])
                n += db.changes
            }
            return (n, old, back, adopted, refused, held)
        }
    }

    /// Atomically takes the oldest pending run of `spec`/`profile` (or any, when nil) whose model
    /// (`model_spec`) is not in `skipModels`.
    public func claim(worker: String, pid: Int32, spec: String? = nil, profile: String? = nil, skipModels: [String] = []) throws -> ClaimedRun? {
        try db.transaction {
            var sql = "SELECT * FROM runs WHERE status = 'pending'"
            var args: [SQLiteDB.Value] = []
            if let spec { sql += " AND spec = ?"; args.append(.text(spec)) }
            if let profile { sql += " AND profile = ?"; args.append(.text(profile)) }
            for m in skipModels { sql += " AND model_spec != ?"; args.append(.text(m)) }
            sql += " ORDER BY id LIMIT 1"
            guard let row = try db.query(sql, args).first, let id = row["id"]?.int else { return nil }
            // The host with the pid: `resetInterrupted` judges the pid on its own host only (the
            // host was set by `recordStart`, after the data and weights are hashed, so until then a
            // sweep on the previous attempt's host took another host's live worker for dead).
            try db.query("UPDATE runs SET status='running', worker=?, worker_pid=?, host=?, heartbeat=?, started_at=?, attempts=attempts+1 WHERE id=?",
                         [.text(worker), .int(Int(pid)), .text(ProcessInfo.processInfo.hostName), .double(Date().timeIntervalSince1970),
                          .text(ResultsStore.now()), .int(id)])
            return ClaimedRun(id: id, spec: try runSpec(row), attempts: (row["attempts"]?.int ?? 0) + 1)
        }
    }

    public func runSpec(_ row: [String: SQLiteDB.Value]) throws -> RunSpec {
        guard let json = row["config_json"]?.text, let cfg = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) else {
            throw StoreError("\(db.path): run \(row["id"]?.int ?? -1) has an unreadable config")
        }
        var r = RunSpec(spec: row["spec"]?.text ?? "", profile: row["profile"]?.text ?? "", cell: row["cell"]?.text ?? "",
                        variant: row["variant"]?.text ?? "", method: row["method"]?.text ?? "", task: row["task"]?.text ?? "",
                        model: row["model"]?.text ?? "", modelSpec: row["model_spec"]?.text ?? "", k: row["k"]?.int,
                        seed: row["seed"]?.int ?? 0, sampleSeed: row["sample_seed"]?.int, config: cfg)
        r.identity = row["identity"]?.text
        r.identityJSON = row["identity_json"]?.text
        return r
    }

    /// The SQL condition and argument of a claim-scoped write: the row is running and, with
    /// `attempt` (`ClaimedRun.attempts`), still under that claim (a worker whose claim was taken
    /// over wrote its thread count, progress and result over the new claim's).
    private func claimed(_ id: Int, attempt: Int?) -> (sql: String, args: [SQLiteDB.Value]) {
        attempt.map { ("id=? AND status='running' AND attempts=?", [.int(id), .int($0)]) } ?? ("id=? AND status='running'", [.int(id)])
    }

    /// Marks the claim alive; returns false when the row is no longer running under it (taken
    /// over, released, merged), so that its worker stops.
    @discardableResult
    public func heartbeat(_ id: Int, attempt: Int? = nil) throws -> Bool {
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET heartbeat=? WHERE \(c.sql)", [.double(Date().timeIntervalSince1970)] + c.args)
        return db.changes > 0
    }

    /// Whether run `id` is still running under the claim of `attempt` (`ClaimedRun.attempts`).
    public func holdsClaim(_ id: Int, attempt: Int) throws -> Bool {
        let c = claimed(id, attempt: attempt)
        return try !db.query("SELECT id FROM runs WHERE \(c.sql)", c.args).isEmpty
    }

    /// Sets run `id`'s identity (a worker completing parts the plan could not pin) while it runs
    /// under the claim of `attempt`; false when it does not any more.
    @discardableResult
    public func completeIdentity(_ id: Int, identity: String, json: String, attempt: Int) throws -> Bool {
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET identity=?, identity_json=? WHERE \(c.sql)", [.text(identity), .text(json)] + c.args)
        return db.changes > 0
    }

    /// A running run's progress after an epoch: epochs done of `total`, and their summed seconds.
    public func recordEpoch(_ id: Int, done: Int, total: Int, seconds: Double, attempt: Int? = nil) throws {
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET epochs_done=?, epochs_total=?, epoch_seconds=?, heartbeat=? WHERE \(c.sql)",
                     [.int(done), .int(total), .double(seconds), .double(Date().timeIntervalSince1970)] + c.args)
    }

    /// A claimed run back to 'pending' (its worker was interrupted): nothing of it is stored, its
    /// checkpoint stays the resume point.
    public func release(_ id: Int, attempt: Int? = nil) throws {
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET status='pending', worker=NULL, worker_pid=NULL WHERE \(c.sql)", c.args)
    }

    /// Provenance known when a run starts.
    public func recordStart(_ id: Int, weightsSha: String?, gitCommit: String?, toolVersion: String, threads: Int, checkpoint: String,
                            attempt: Int? = nil) throws {
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET weights_sha256=?, git_commit=?, tool_version=?, threads=?, host=?, checkpoint=? WHERE \(c.sql)",
                     [weightsSha.map { .text($0) } ?? .null, gitCommit.map { .text($0) } ?? .null, .text(toolVersion),
                      .int(threads), .text(ProcessInfo.processInfo.hostName), .text(checkpoint)] + c.args)
    }

    /// Stores a finished run (epochs, best/last scores, predictions, status) in one transaction.
    /// Stores a finished run's result. `attempt`: the claim it ran under (`ClaimedRun.attempts`);
    /// a run claimed again since (its worker taken for dead) throws `ClaimTakenOver` and keeps
    /// what the current claim stores.
    public func complete(_ id: Int, result: TrainResult, attempt: Int? = nil) throws {
        try db.transaction {
            // Only the claimed row takes a result: a row merged, reset or replaced since the claim
            // (status not 'running') keeps what it holds; writing into it mixed two executions.
            let row = try db.query("SELECT status, attempts, worker FROM runs WHERE id=?", [.int(id)]).first
            let status = row?["status"]?.text
            if let attempt, let now = row?["attempts"]?.int, now != attempt {
                throw ClaimTakenOver(description: "\(db.path): run \(id) was claimed again since this worker claimed it (attempt \(attempt); now attempt \(now)"
                    + "\(row?["worker"]?.text.map { ", by \($0)" } ?? ""), status \(status ?? "?")): this worker was taken for dead; its result is not stored, the current claim's is")
            }
            guard status == "running" else {
                throw StoreError("\(db.path): run \(id) is no longer running here (\(status.map { "status \($0)" } ?? "no such row"): replaced or merged since it was claimed); its result is not stored")
            }
            try db.query("DELETE FROM epochs WHERE run_id=?", [.int(id)])
            try db.query("DELETE FROM epoch_metrics WHERE run_id=?", [.int(id)])
            try db.query("DELETE FROM scores WHERE run_id=?", [.int(id)])
            try db.query("DELETE FROM predictions WHERE run_id=?", [.int(id)])
            try db.query("DELETE FROM steps WHERE run_id=?", [.int(id)])
            try db.query("DELETE FROM run_metrics WHERE run_id=?", [.int(id)])
            for (name, v) in (result.extras ?? [:]).sorted(by: { $0.key < $1.key }) where v.isFinite {
                try db.query("INSERT INTO run_metrics VALUES (?,?,?)", [.int(id), .text(name), .double(v)])
            }
            func json(_ o: Any) throws -> String { String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) }
            for st in result.steps ?? [] {
                try db.query("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?)",
                             [.int(id), .int(st.step), .int(st.epoch), .double(st.loss), .text(try json(st.lr)), .double(st.gradNorm),
                              .text(try json(st.gradNorms)), .text(try json(st.paramNorms)), .double(st.seconds)])
            }
            for e in result.history {
                let m = String(decoding: try JSONSerialization.data(withJSONObject: e.metrics, options: [.sortedKeys]), as: UTF8.self)
                try db.query("INSERT INTO epochs VALUES (?,?,?,?,?,?,?)",
                             [.int(id), .int(e.epoch), .int(e.step), .double(e.trainLoss), .text(m),
                              e.selection.map { .double($0) } ?? .null, .double(e.seconds)])
                for (name, v) in (e.extras ?? [:]).sorted(by: { $0.key < $1.key }) where v.isFinite {
                    try db.query("INSERT INTO epoch_metrics VALUES (?,?,?,?)", [.int(id), .int(e.epoch), .text(name), .double(v)])
                }
            }
            // A run evaluated without an epoch of training (max_steps 0, an evaluated adapter): its
            // one evaluation is epoch 0, as its best.
            let lastEpoch = result.history.last(where: { !$0.metrics.isEmpty })?.epoch ?? (result.history.isEmpty && !result.last.isEmpty ? result.bestEpoch : nil)
            for (kind, scores, ep) in [("best", result.best, result.bestEpoch), ("last", result.last, lastEpoch)] {
                for (metric, v) in scores.sorted(by: { $0.key < $1.key }) where v.isFinite {
                    try db.query("INSERT INTO scores VALUES (?,?,?,?,?)", [.int(id), .text(kind), .text(metric), .double(v), ep.map { .int($0) } ?? .null])
                }
            }
            for (kind, preds) in [("last", result.predictions), ("best", result.bestPredictions)] {
                for (i, p) in (preds ?? []).enumerated() {
                    try db.query("INSERT INTO predictions (run_id, kind, position, prediction) VALUES (?,?,?,?)", [.int(id), .text(kind), .int(i), .text(p)])
                }
            }
            let hashes = String(decoding: try JSONSerialization.data(withJSONObject: result.dataFiles, options: [.sortedKeys]), as: UTF8.self)
            // The progress columns from the result too: an epoch's progress write can fail where
            // the result's does not (a disk that filled during the run and was freed before a
            // resume stored it from its checkpoint), and they fed `sweep --dry-run`'s estimates.
            let epochsDone: SQLiteDB.Value = result.history.last.map { .int($0.epoch) } ?? .null
            let epochSeconds: SQLiteDB.Value = result.history.isEmpty ? .null : .double(result.history.map(\.seconds).reduce(0, +))
            try db.query("""
                UPDATE runs SET status=?, finished_at=?, diverged_step=?, data_hashes=?, manifest=?, trainable_params=?, error=NULL,
                  epochs_done=COALESCE(?, epochs_done), epoch_seconds=COALESCE(?, epoch_seconds)
                WHERE id=?
                """, [.text(result.status == .diverged ? "diverged" : "done"), .text(ResultsStore.now()),
                      result.divergedAtStep.map { .int($0) } ?? .null, .text(hashes), result.manifest.map { .text($0) } ?? .null,
                      .int(result.trainableParams), epochsDone, epochSeconds, .int(id)])
        }
    }

    public func fail(_ id: Int, error: String, attempt: Int? = nil) throws {
        // Only a running row fails (one merged or finished since the claim keeps its result), and
        // only under the claim that failed it.
        let c = claimed(id, attempt: attempt)
        try db.query("UPDATE runs SET status='failed', finished_at=?, error=? WHERE \(c.sql)", [.text(ResultsStore.now()), .text(error)] + c.args)
    }

    /// Runs of `spec`/`profile` (every run when nil) left 'running' by a worker that no longer
    /// exists (same host: pid gone; other hosts: heartbeat older than `staleAfter` seconds) go back
    /// to 'pending'. Returns how many.
    @discardableResult
    public func resetInterrupted(spec: String? = nil, profile: String? = nil, staleAfter: Double = 600) throws -> Int {
        try db.transaction {
            let host = ProcessInfo.processInfo.hostName
            var n = 0
            var sql = "SELECT id, host, worker_pid, heartbeat FROM runs WHERE status='running'"
            var args: [SQLiteDB.Value] = []
            if let spec { sql += " AND spec=?"; args.append(.text(spec)) }
            if let profile { sql += " AND profile=?"; args.append(.text(profile)) }
            for row in try db.query(sql, args) {
                let id = row["id"]!.int!
                let sameHost = (row["host"]?.text ?? host) == host
                let pid = Int32(row["worker_pid"]?.int ?? 0)
                let dead = sameHost ? !ResultsStore.workerAlive(pid) : (Date().timeIntervalSince1970 - (row["heartbeat"]?.double ?? 0) > staleAfter)
                if dead {
                    try db.query("UPDATE runs SET status='pending', worker=NULL, worker_pid=NULL WHERE id=?", [.int(id)])
                    n += 1
                }
            }
            return n
        }
    }

    /// A worker process is alive when it exists, is not a zombie (a killed worker whose parent died
    /// too may never be reaped), and is still a promptrepro process (guards against PID reuse).
    public static func workerAlive(_ pid: Int32) -> Bool {
        ProcessLiveness.isAlive(pid, commandContains: "promptrepro")
    }

    /// Failed runs back to pending (a rerun retries them). Only current rows: a failed run whose
    /// identity changed was superseded by `insertPending` and gets a fresh row with the new config.
    /// `spec`/`profile` nil: of every spec/profile (a worker started without them). Returns how many.
    @discardableResult
    public func retryFailed(spec: String?, profile: String?, skipModels: [String] = []) throws -> Int {
        var sql = "UPDATE runs SET status='pending', error=NULL WHERE status='failed'"
        var args: [SQLiteDB.Value] = []
        if let spec { sql += " AND spec=?"; args.append(.text(spec)) }
        if let profile { sql += " AND profile=?"; args.append(.text(profile)) }
        for m in skipModels { sql += " AND model_spec != ?"; args.append(.text(m)) }
        try db.query(sql, args)
        return db.changes
    }

    /// "pending 0, running 0, done 6, …, evaluated 0" for `counts`, then the superseded rows of the
    /// same spec and profile (history, which `counts` leaves out), e.g. "; 4 superseded (kept as history)".
    public func statusSummary(_ counts: [String: Int], spec: String? = nil, profile: String? = nil) throws -> String {
        var sql = "SELECT COUNT(*) AS n FROM runs WHERE status = 'superseded'"
        var args: [SQLiteDB.Value] = []
        if let spec { sql += " AND spec=?"; args.append(.text(spec)) }
        if let profile { sql += " AND profile=?"; args.append(.text(profile)) }
        let old = try db.query(sql, args).first?["n"]?.int ?? 0
        return ResultsStore.statuses.filter { $0 != "superseded" }.map { "\($0) \(counts[$0] ?? 0)" }.joined(separator: ", ")
            + (old > 0 ? "; \(old) superseded (kept as history)" : "")
    }

    /// Runs per status (superseded rows are history and not counted; nor are runs of models in
    /// `skipModels`, which a sweep skips because the model is missing).
    /// Rows whose id is in `excluding` are not counted either (a sweep's finished runs that its spec
    /// no longer plans).
    public func counts(spec: String? = nil, profile: String? = nil, skipModels: [String] = [], excluding: Set<Int> = []) throws -> [String: Int] {
        var sql = "SELECT status, id FROM runs WHERE status != 'superseded'"
        var args: [SQLiteDB.Value] = []
        if let spec { sql += " AND spec=?"; args.append(.text(spec)) }
        if let profile { sql += " AND profile=?"; args.append(.text(profile)) }
        for m in skipModels { sql += " AND model_spec != ?"; args.append(.text(m)) }
        var out: [String: Int] = [:]
        for r in try db.query(sql, args) where !excluding.contains(r["id"]!.int!) { out[r["status"]!.text!, default: 0] += 1 }
        return out
    }

    /// Stores an evaluation-only run (a PEFT adapter trained elsewhere, `eval --adapter`) with status
    /// 'evaluated' and the adapter's sha256; an evaluated row of the same cell and seed with another
    /// identity is superseded. Returns the run id.
    /// - Throws: `StoreError` when the cell and seed hold a run of a sweep (planned, running or
    ///   finished): the evaluated run would supersede it and take its place in tables and `compare`
    ///   (store the adapter under a variant of its own instead). Nothing is written then.
    /// - Throws: `StoreError` also when the cell and seed hold an evaluated run of an adapter at
    ///   another path (`otherAdapterHolding`), unless `replacingOtherAdapter`.
    @discardableResult
    public func recordEvaluated(_ r: RunSpec, result: TrainResult, adapterSha256: String, replacingOtherAdapter: Bool = false,
                                toolVersion: String? = nil, threads: Int? = nil, gitCommit: String? = nil) throws -> Int {
        if let problem = try sweepRunHolding(r) { throw StoreError(problem) }
        if !replacingOtherAdapter, let problem = try otherAdapterHolding(r) { throw StoreError(problem) }
        // Its row is claimed and completed below with this evaluation's result, never adopted.
        try insertPending([r], adopting: false)
        guard let row = try currentRun(spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed),
              let id = row["id"]?.int else {
            throw StoreError("\(db.path): could not record the evaluated run \(r.cell) seed \(r.seed)")
        }
        // Claimed here (status running) for `complete`, which stores results into claimed rows only.
        try db.query("UPDATE runs SET status='running', started_at=?, attempts=attempts+1 WHERE id=?", [.text(ResultsStore.now()), .int(id)])
        // What the evaluation ran on, as a sweep's worker records it (`recordStart`): the reads'
        // mixed-numerics check compares it (evaluated runs stored NULL and were never checked).
        if let toolVersion, let threads {
            try recordStart(id, weightsSha: nil, gitCommit: gitCommit, toolVersion: toolVersion, threads: threads, checkpoint: "")
        }
        try complete(id, result: result)
        try db.query("UPDATE runs SET status='evaluated', adapter_sha256=? WHERE id=?", [.text(adapterSha256), .int(id)])
        return id
    }

    /// Why an evaluated run may not be stored at `r`'s cell and seed, or nil: the cell holds a run of
    /// a sweep (planned, running or finished), which an evaluated run would supersede.
    public func sweepRunHolding(_ r: RunSpec) throws -> String? {
        guard let row = try currentRun(spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed),
              let status = row["status"]?.text, status != RunStatus.evaluated.rawValue else { return nil }
        return "\(db.path): \(r.spec)/\(r.profile) cell \(r.cell) seed \(r.seed) holds a \(status) run of the sweep (id \(row["id"]?.int ?? 0)); "
            + "an evaluated adapter stored there would supersede it. Store the adapter under a variant of its own (--variant), which compare pairs with the trained runs"
    }

    /// Why the evaluated adapter `r` may not replace the evaluated run stored at its cell and seed,
    /// or nil: that run evaluated other weights at another path. The variant defaults to the adapter
    /// directory's name, so two adapters saved as `…/adapter` fell into one cell and the second
    /// superseded the first without a word. The same path (an adapter saved again in place) or the
    /// same adapter elsewhere (the sha256 of adapter_model.safetensors and of adapter_config.json
    /// both equal: a copied or moved adapter) is a re-evaluation and replaces its run.
    public func otherAdapterHolding(_ r: RunSpec) throws -> String? {
        // `adapter` is "<path>#sha256:<hex>#adapter_config:<hex>" (TrainConfig.adapter).
        let path = TrainConfig.pathPart
        guard let new = r.config.adapter,
              let row = try currentRun(spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed),
              row["status"]?.text == RunStatus.evaluated.rawValue, let id = row["id"]?.int,
              let stored = try db.query("SELECT config_json, adapter_sha256 FROM runs WHERE id=?", [.int(id)]).first,
              let json = stored["config_json"]?.text, let cfg = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)),
              let old = cfg.adapter, path(old) != path(new),
              // The same adapter elsewhere (a copy: the same adapter_model.safetensors and the same
              // adapter_config.json, whose lora_alpha or use_rslora move every number) is a
              // re-evaluation.
              String(old.dropFirst(path(old).count)) != String(new.dropFirst(path(new).count)) else { return nil }
        let sha = stored["adapter_sha256"]?.text.map { " (sha256 \($0.prefix(12))…)" } ?? ""
        return "\(db.path): \(r.spec)/\(r.profile) cell \(r.cell) seed \(r.seed) holds evaluated run \(id) of the adapter at \(path(old))\(sha); "
            + "the adapter at \(path(new)) would replace it. Store it under a variant of its own (--variant NAME; the default is the adapter directory's name, "
            + "\(r.variant)), or pass --replace to replace that run"
    }

    /// Why the evaluated adapter `r` may not be stored at its seed, or nil: another seed of its cell
    /// holds an evaluated run of the same weights (adapter_model.safetensors with sha256
    /// `adapterSha256`). A seed stands for an independent training run; one adapter under three
    /// seeds passed the gate as three (a PEFT adapter carries no seed for `eval` to check).
    public func sameAdapterOtherSeed(_ r: RunSpec, adapterSha256: String) throws -> String? {
        guard let row = try db.query("SELECT id, seed FROM runs WHERE spec=? AND profile=? AND cell=? AND status='evaluated' AND adapter_sha256=? AND seed != ? ORDER BY seed LIMIT 1",
                                     [.text(r.spec), .text(r.profile), .text(r.cell), .text(adapterSha256), .int(r.seed)]).first,
              let id = row["id"]?.int, let seed = row["seed"]?.int else { return nil }
        return "\(db.path): \(r.spec)/\(r.profile) cell \(r.cell) seed \(seed) holds evaluated run \(id) of the same adapter weights (sha256 \(adapterSha256.prefix(12))…); "
            + "a seed stands for an independent training run: evaluate each seed's own adapter under its --seed (reads count such a copy once)"
    }

    /// Marks as superseded the current evaluated runs of `r`'s cell and seed with the same adapter
    /// weights under another sample seed (stored by an `eval` that did not read the run's sample
    /// seed); returns how many.
    @discardableResult
    public func supersedeSameAdapterOtherSample(_ r: RunSpec, adapterSha256: String) throws -> Int {
        guard schemaVersion >= 4 else { return 0 }
        try db.query("""
            UPDATE runs SET superseded_status=status, status='superseded'
            WHERE spec=? AND profile=? AND cell=? AND seed=? AND status='evaluated' AND adapter_sha256=? AND IFNULL(sample_seed, seed) != ?
            """, [.text(r.spec), .text(r.profile), .text(r.cell), .int(r.seed), .text(adapterSha256), .int(r.replicate.sampleSeed)])
        return db.changes
    }

    /// A run's stored predictions (validation order) of its best or last evaluated epoch.
    public func predictions(run id: Int, kind: String) throws -> [String] {
        try db.query("SELECT prediction FROM predictions WHERE run_id=? AND kind=? ORDER BY position", [.int(id), .text(kind)]).map { $0["prediction"]?.text ?? "" }
    }

    // MARK: weights hash cache

    /// sha256 of a checkpoint's weight files (its `*.safetensors`, sorted by name): the one file's
    /// hash, or the hash of the comma-joined file hashes. Each file goes through `fileHash`.
    public func weightsHash(directory: String) throws -> String {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        let parts = try files.map { try fileHash((directory as NSString).appendingPathComponent($0)) }
        return parts.count == 1 ? parts[0] : sha256Hex(parts.joined(separator: ","))
    }

    /// sha256 (lower-case hex) of the file `path` leads to, cached in the store's `weights_hashes`
    /// table by (real path, size, change time).
    ///
    /// The key follows links (an HF snapshot's blob, a user's link): a link's own size and times do
    /// not change when the file behind it is rewritten in place. It uses the inode's change time
    /// (`st_ctim`, ns), not the modification time: every write moves it and no tool can set it
    /// back, where `touch -d` or a copy with `-p` restores an mtime over new content. (A chmod or
    /// a copy also moves it; that only costs one more hash.) The cache column is still named
    /// `mtime`; rows keyed by modification time by older versions no longer match and are
    /// replaced on first use. A read-only store hashes without caching.
    /// - Throws: the file cannot be stat'ed or read (`SHA256.hex(file:)` refuses a directory).
    public func fileHash(_ path: String) throws -> String {
        let real = (path as NSString).resolvingSymlinksInPath
        var st = stat()
        guard stat(real, &st) == 0 else {
            throw StoreError("\(real): cannot read its size and change time (\(String(cString: strerror(errno))))")
        }
        let size = Int(st.st_size)
        let changed = Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) * 1e-9
        if let row = try db.query("SELECT sha256 FROM weights_hashes WHERE path=? AND size=? AND mtime=?", [.text(real), .int(size), .double(changed)]).first,
           let sha = row["sha256"]?.text {
            return sha
        }
        let sha = try SHA256.hex(file: real)
        if !readOnly && cachesFileHashes { try db.query("INSERT OR REPLACE INTO weights_hashes VALUES (?,?,?,?)", [.text(real), .int(size), .double(changed), .text(sha)]) }
        return sha
    }
}
