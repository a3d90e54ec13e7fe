import Foundation
import Store
import TestSupport
import XCTest

/// A store read where nothing can be written (a read-only file system: a mounted share, a CI
/// artifact): `results` could not read it ("unable to open database file": opening it read-write
/// failed, and read-only SQLite needs to create its -shm file). Mounting needs a user namespace
/// (`unshare -rm`); where the kernel refuses one the test is skipped, saying so.
final class ReadOnlyStoreTests: XCTestCase {
    /// Runs `promptrepro ARGS` with `dir/ro` a read-only bind mount of `dir/src`; (status, stdout + stderr).
    func runReadOnly(_ dir: String, _ args: [String]) throws -> (Int32, String) { try runMounted(dir, [try binary()] + args) }

    /// Runs the program `argv` with `dir/ro` a read-only bind mount of `dir/src`; (status, stdout + stderr).
    func runMounted(_ dir: String, _ argv: [String]) throws -> (Int32, String) {
        try runMerged("/usr/bin/env", ["unshare", "-rm", "sh", "-c", #"mount --bind "$1/src" "$1/ro" && mount -o remount,ro,bind "$1/ro" && shift && exec "$@""#,
                                       "sh", dir] + argv)
    }

    /// `miniSpec` written to `dir/mini.yaml` and swept into `db` (checkpoints in `dir/ck`); its
    /// `results` table, read where the store was written. The store must be closed cleanly (no -wal).
    func sweptMiniStore(_ dir: String, db: String, data: String) throws -> String {
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        let (status, table) = try runStdout(["results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", db, "--data-dir", data])
        XCTAssertEqual(status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: db + "-wal"))
        return table
    }

    func testResultsReadsAStoreOnAReadOnlyFileSystem() throws {
        let data = try sharedData()
        let dir = tempDir("rostore")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for d in ["src", "ro"] { try FileManager.default.createDirectory(atPath: "\(dir)/\(d)", withIntermediateDirectories: true) }
        // Probe: a read-only mount of an empty directory, and `touch` inside it must fail.
        let (probe, probeOut) = try runMounted(dir, ["touch", "\(dir)/ro/x"])
        if probe == 0 || !probeOut.contains("Read-only") {
            throw XCTSkip("no read-only bind mount here (unshare -rm: \(probeOut.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        let db = "\(dir)/src/s.sqlite"
        let written = try sweptMiniStore(dir, db: db, data: data)
        // The same table from the read-only mount (the store closed cleanly: no -wal beside it).
        var (status, out) = try runReadOnly(dir, ["results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", "\(dir)/ro/s.sqlite", "--data-dir", data])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(written), "read-only results differ:\n\(out)\n---\n\(written)")
        (status, out) = try runReadOnly(dir, ["steps", "\(dir)/mini.yaml", "--profile", "smoke", "--db", "\(dir)/ro/s.sqlite"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("cell,seed,step"), out)
        // A store whose write-ahead log holds commits the file lacks cannot be read without
        // creating its -shm: refused by name rather than read without those commits.
        let open = try SQLiteDB(path: db)
        try open.exec("PRAGMA wal_autocheckpoint=0")
        try open.exec("UPDATE runs SET host = 'edited'")
        try FileManager.default.copyItem(atPath: db, toPath: "\(dir)/src/w.sqlite")
        try FileManager.default.copyItem(atPath: db + "-wal", toPath: "\(dir)/src/w.sqlite-wal")
        XCTAssertGreaterThan(try FileManager.default.attributesOfItem(atPath: "\(dir)/src/w.sqlite-wal")[.size] as? Int ?? 0, 0)
        (status, out) = try runReadOnly(dir, ["results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", "\(dir)/ro/w.sqlite", "--data-dir", data])
        XCTAssertEqual(status, 1, out)
        XCTAssertTrue(out.contains("\(dir)/ro/w.sqlite: cannot be read here: its write-ahead log") && out.contains("Copy the store and its -wal file"), out)
    }

    /// The same store read by a user who may write neither the file (mode 444) nor its directory
    /// (another user's): SQLite says "attempt to write a readonly database" (SQLITE_READONLY) there,
    /// not "unable to open", and `results` failed instead of reading it as immutable. Needs root
    /// to drop to another user (`setpriv`); skipped otherwise, saying so.
    func testResultsReadsAStoreItsUserCannotWrite() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and setpriv to read the store as another user")
        }
        let data = try sharedData()
        let dir = tempDir("rouser")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite"
        let written = try sweptMiniStore(dir, db: db, data: data)
        let ro = "\(dir)/ro"
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: db, toPath: "\(ro)/s.sqlite")
        for (path, mode) in [(dir, 0o755), (ro, 0o755), ("\(ro)/s.sqlite", 0o444), ("\(dir)/mini.yaml", 0o644)] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        let (status, out) = try runMerged("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=\(dir)",
                                                               "PROMPTREPRO_CACHE=\(dir)/cache", "PROMPTREPRO_ROOT=\(repoRoot)", try binary(),
                                                               "results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", "\(ro)/s.sqlite", "--data-dir", data])
        if out.contains("Permission denied") && !out.contains("s.sqlite") {
            throw XCTSkip("the unprivileged user cannot run the binary or read the data here: \(out.prefix(200))")
        }
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains(written), "results as another user differ:\n\(out)\n---\n\(written)")
    }
}

/// A read of an empty file or of an SQLite file without tables (a store copied without its -wal
/// after an unclean stop) says so and leaves it as it was: `results` and `export` wrote the
/// schema into it, and a later `merge` of it "merged 0 runs", exit 0.
final class EmptyStoreReadTests: XCTestCase {
    func testReadsLeaveAnEmptyFileUntouched() throws {
        let dir = tempDir("emptystore")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "\(dir)/empty.sqlite", contents: Data())
        let noTables = try SQLiteDB(path: "\(dir)/notables.sqlite")
        try noTables.exec("CREATE TABLE t(x); DROP TABLE t;")
        for (file, what) in [("empty.sqlite", "an empty file"), ("notables.sqlite", "an SQLite file without tables")] {
            let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(file)"))
            for args in [["results", "table1"], ["export", "table1", "--results-dir", "\(dir)/out"]] {
                let (rc, err) = try runCapture(args + ["--db", "\(dir)/\(file)"])
                XCTAssertEqual(rc, 1, err)
                XCTAssertTrue(err.contains("\(dir)/\(file): \(what), not a results store: no runs to read"), err)
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(file)")), before, "\(args[0]) wrote to \(file)")
            }
        }
    }
}
