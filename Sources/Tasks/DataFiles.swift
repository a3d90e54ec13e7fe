// Where data lives and whether it is the pinned data: --data-dir, PROMPTREPRO_DATA, or data/.
// Baselines/data.lock lists "sha256  relative/path" per file; runs refuse files that differ
// unless --allow-unpinned, and record the hashes they used.
import Foundation
import Support

public enum DataFiles {
    /// `--data-dir`, else `PROMPTREPRO_DATA`, else `defaultDir`; a directory named by the flag or
    /// the variable must exist (an error, never a silent fall-back to the default).
    /// `environmentDir`: the value of PROMPTREPRO_DATA (the CLI passes it; libraries read no environment).
    public static func directory(_ explicit: String?, environmentDir: String? = nil, defaultDir: String = "data") throws -> String {
        var looked: [String] = []
        for (what, dir) in [("--data-dir", explicit), ("PROMPTREPRO_DATA", environmentDir.flatMap { $0.isEmpty ? nil : $0 }),
                            ("default", defaultDir)] {
            guard let dir else { continue }
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue { return dir }
            looked.append(what == "default" ? "\(dir) (the default)" : "\(what): \(dir)")
            if what != "default" {
                throw TaskError(file: "\(what): \(dir)", detail: "no such directory. Fix the path, run `make fetch-data`, or unset it")
            }
        }
        throw TaskError(file: looked.joined(separator: "; "),
                        detail: "no data directory. Run `make fetch-data` (official archives) or `make fetch-data SOURCE=../shared/data`, set PROMPTREPRO_DATA, or pass --data-dir")
    }

    public struct Lock {
        public var entries: [String: String]  // relative path → sha256

        public static func load(path: String) throws -> Lock {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw TaskError(file: path, detail: "cannot read the data lock") }
            var e: [String: String] = [:]
            for (i, line) in pyLines(text).enumerated() {
                let l = line.trimmingCharacters(in: .whitespaces)
                if l.isEmpty || l.hasPrefix("#") { continue }
                let parts = l.split(separator: " ", omittingEmptySubsequences: true)
                guard parts.count == 2, parts[0].count == 64 else { throw TaskError(file: path, detail: "line \(i + 1): expected '<sha256>  <path>'") }
                e[String(parts[1])] = String(parts[0])
            }
            return Lock(entries: e)
        }

        /// Throws unless `rel` is pinned and its hash matches (or `allowUnpinned`).
        public func check(relativePath rel: String, sha256: String, allowUnpinned: Bool, lockPath: String) throws {
            if allowUnpinned { return }
            guard let pinned = entries[rel] else {
                throw TaskError(file: rel, detail: "not pinned in \(lockPath); add it with `promptrepro data lock` or pass --allow-unpinned")
            }
            guard pinned == sha256 else {
                throw TaskError(file: rel, detail: "sha256 \(sha256.prefix(16))… differs from the pin \(pinned.prefix(16))… in \(lockPath); restore the pinned file or pass --allow-unpinned")
            }
        }
    }

    /// Every regular file under `dir` (relative paths, sorted), with its sha256. Symbolic links to
    /// directories are followed, as the readers follow them (a data directory assembled from links
    /// once pinned only its real files, and a lock written from it unpinned the rest); a link
    /// back into a directory already walked is not walked twice.
    public static func hashes(under dir: String) throws -> [(String, String)] {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir) else { throw TaskError(file: dir, detail: "cannot list") }
        var out: [(String, String)] = []
        var seen = Set<String>()
        func walk(_ rel: String) throws {
            let full = rel.isEmpty ? dir : (dir as NSString).appendingPathComponent(rel)
            guard seen.insert((full as NSString).resolvingSymlinksInPath).inserted else { return }
            guard let names = try? fm.contentsOfDirectory(atPath: full) else { throw TaskError(file: full, detail: "cannot list") }
            for name in names.sorted() where !name.hasPrefix(".") {
                let r = rel.isEmpty ? name : (rel as NSString).appendingPathComponent(name)
                let path = (dir as NSString).appendingPathComponent(r)
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &isDir) else { continue }  // a dangling link
                if isDir.boolValue { try walk(r) } else if !name.hasSuffix(".md") { out.append((r, try SHA256.hex(file: path))) }
            }
        }
        try walk("")
        return out.sorted { $0.0 < $1.0 }
    }
}
