// A small wrapper over the SQLite C API: WAL, busy timeout, prepared statements, transactions.
// Only this file imports CSQLite.
import CSQLite
import Foundation

public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

public final class SQLiteDB {
    let handle: OpaquePointer
    public let path: String

    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        // SQLite reports a directory as a disk I/O error ("disk full or failing?").
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw StoreError("\(path): is a directory, not an SQLite store (give the store's file, e.g. \((path as NSString).appendingPathComponent("promptrepro.sqlite")))")
        }
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var h = try SQLiteDB.open(path, flags: flags)
        // A WAL store read where its -shm file cannot be created (a read-only file system, a
        // directory without write permission) fails on its first read with "unable to open
        // database file". With no write-ahead log left beside it (a store closed cleanly, or one
        // whose log is empty) nothing can change it: it is read as immutable (no locks, no -shm).
        // A non-empty log holds committed writes the file lacks: that is refused by name. SQLite
        // reports it as "unable to open" (SQLITE_CANTOPEN) or, where the file itself is read-only
        // too, as SQLITE_READONLY_CANTINIT ("attempt to write a readonly database").
        if readOnly, [SQLITE_CANTOPEN, SQLITE_READONLY].contains(sqlite3_exec(h, "SELECT count(*) FROM sqlite_master", nil, nil, nil) & 0xFF) {
            sqlite3_close(h)
            let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int ?? 0
            guard wal == 0 else {
                throw StoreError("\(path): cannot be read here: its write-ahead log (\(path)-wal, \(wal) bytes) holds writes not yet in the file, "
                    + "and SQLite cannot create \(path)-shm to read them (a read-only file system or directory?). Copy the store and its -wal file to a writable place")
            }
            var uri = "file:"
            for c in path.unicodeScalars { uri += "?#%".unicodeScalars.contains(c) ? String(format: "%%%02X", c.value) : String(c) }
            h = try SQLiteDB.open(uri + "?immutable=1", flags: flags | SQLITE_OPEN_URI, shownAs: path)
        }
        handle = h
        sqlite3_busy_timeout(h, 60_000)
        if !readOnly {
            // Switching a new file to WAL can report SQLITE_BUSY without calling the busy handler
            // while another connection creates the same store (a sweep and its workers): retry.
            var attempt = 0
            while true {
                do { try exec("PRAGMA journal_mode=WAL"); break } catch where attempt < 200 && "\(error)".contains("locked") {
                    attempt += 1
                    usleep(50_000)
                }
            }
            try exec("PRAGMA synchronous=NORMAL")
        }
        try exec("PRAGMA foreign_keys=ON")
    }

    private static func open(_ name: String, flags: Int32, shownAs path: String? = nil) throws -> OpaquePointer {
        var h: OpaquePointer?
        let rc = sqlite3_open_v2(name, &h, flags | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let h else {
            let msg = SQLiteDB.explain(h.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory", code: rc)
            if let h { sqlite3_close(h) }
            throw StoreError("\(path ?? name): cannot open database: \(msg)")
        }
        return h
    }

    deinit { sqlite3_close_v2(handle) }

    var errorMessage: String { SQLiteDB.explain(String(cString: sqlite3_errmsg(handle)), code: sqlite3_errcode(handle)) }

    /// The SQLite message plus what it means for the user.
    static func explain(_ msg: String, code: Int32) -> String {
        switch code & 0xFF {
        case SQLITE_FULL: return "\(msg) — the disk is full; free space and rerun (the transaction was rolled back, nothing stored changed)"
        case SQLITE_READONLY: return "\(msg) — the store is on a read-only file system or not writable; use a writable --db path"
        case SQLITE_CANTOPEN: return "\(msg) — cannot open or create the store file (missing directory, read-only or full disk?)"
        case SQLITE_IOERR: return "\(msg) — I/O error (disk full or failing?); the transaction was rolled back"
        case SQLITE_CORRUPT, SQLITE_NOTADB: return "\(msg) — this file is not a usable PromptRepro store"
        default: return msg
        }
    }

    public func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = SQLiteDB.explain(err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle)), code: rc)
            sqlite3_free(err)
            throw StoreError("\(path): \(msg) (in: \(sql.prefix(80)))")
        }
    }

    public enum Value: Equatable {
        case int(Int), double(Double), text(String), null
    }

    /// Runs `sql` with positional bindings; returns every row as column name → value.
    @discardableResult
    public func query(_ sql: String, _ args: [Value] = []) throws -> [[String: Value]] {
        var st: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &st, nil) == SQLITE_OK, let st else {
            throw StoreError("\(path): \(errorMessage) (in: \(sql.prefix(80)))")
        }
        defer { sqlite3_finalize(st) }
        for (i, a) in args.enumerated() {
            let idx = Int32(i + 1)
            switch a {
            case .int(let v): sqlite3_bind_int64(st, idx, sqlite3_int64(v))
            case .double(let v): sqlite3_bind_double(st, idx, v)
            case .text(let v): sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT)
            case .null: sqlite3_bind_null(st, idx)
            }
        }
        var rows: [[String: Value]] = []
        while true {
            let rc = sqlite3_step(st)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw StoreError("\(path): \(errorMessage) (in: \(sql.prefix(80)))") }
            var row: [String: Value] = [:]
            for c in 0..<sqlite3_column_count(st) {
                let name = String(cString: sqlite3_column_name(st, c))
                switch sqlite3_column_type(st, c) {
                case SQLITE_INTEGER: row[name] = .int(Int(sqlite3_column_int64(st, c)))
                case SQLITE_FLOAT: row[name] = .double(sqlite3_column_double(st, c))
                case SQLITE_NULL: row[name] = .null
                default: row[name] = .text(String(cString: sqlite3_column_text(st, c)))
                }
            }
            rows.append(row)
        }
        return rows
    }

    public var lastInsertID: Int { Int(sqlite3_last_insert_rowid(handle)) }
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in one transaction (IMMEDIATE: takes the write lock up front, so claims are atomic).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try exec("COMMIT")
            return r
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }
}

extension SQLiteDB.Value {
    public var int: Int? { if case .int(let v) = self { return v }; if case .double(let d) = self { return Int(d) }; return nil }
    public var double: Double? { if case .double(let v) = self { return v }; if case .int(let i) = self { return Double(i) }; return nil }
    public var text: String? { if case .text(let v) = self { return v }; return nil }
}
