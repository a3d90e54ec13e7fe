// What every test target shares: the repository root, the shared data directory beside it (CI
// must have it: a missing one fails there and skips elsewhere), fresh temporary directories, and a
// deterministic synthetic token batch.
// Linked only into test targets.
import Foundation
import XCTest

/// The repository root (two levels above Tests/TestSupport).
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

/// The shared directory (data, tokenizers, parity fixtures, trials): $PROMPTREPRO_SHARED, else
/// ../shared beside the repository. Under CI=true a missing directory fails the calling test;
/// elsewhere the test is skipped.
public func sharedDir(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let env = ProcessInfo.processInfo.environment
    let candidates = [env["PROMPTREPRO_SHARED"], "\(repoRoot)/../shared"].compactMap { $0 }.map { URL(fileURLWithPath: $0).standardized.path }
    for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
    if env["CI"] == "true" { XCTFail("shared directory not found (looked at \(candidates)); CI must have ../shared", file: file, line: line) }
    throw XCTSkip("shared directory not found at \(candidates)")
}

/// `<shared>/relative` (a file or folder) where it exists, else nil: a test's optional part that
/// reads it runs only then. Under CI=true a missing one (or a missing shared directory) fails the
/// calling test, as `sharedDir` does, since CI has all of ../shared.
public func sharedItem(_ relative: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
    guard let dir = try? sharedDir(file: file, line: line) else { return nil }
    let path = "\(dir)/\(relative)"
    if FileManager.default.fileExists(atPath: path) { return path }
    if ProcessInfo.processInfo.environment["CI"] == "true" {
        XCTFail("\(path) not found; CI must have all of ../shared", file: file, line: line)
    }
    return nil
}

/// The shared data directory (`<shared>/data`), with `sharedDir`'s CI rule.
public func sharedData(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let dir = try sharedDir(file: file, line: line)
    guard let data = sharedItem("data", file: file, line: line) else { throw XCTSkip("\(dir)/data not found") }
    return data
}

/// The promptrepro executable built next to the test bundle (or in .build/debug). A missing one
/// fails the calling test (and skips the rest of it): the CLI tests never pass without running.
public func binary(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for d in [dir, dir.deletingLastPathComponent()] {
        let p = d.appendingPathComponent("promptrepro").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    let p = "\(repoRoot)/.build/debug/promptrepro"
    if FileManager.default.isExecutableFile(atPath: p) { return p }
    XCTFail("promptrepro binary not found next to \(CommandLine.arguments[0]) (run `swift build --build-tests`)", file: file, line: line)
    throw XCTSkip("no binary")
}

/// A new empty directory under the system temporary directory, named after `tag` and the process.
public func tempDir(_ tag: String) -> String {
    let d = NSTemporaryDirectory() + "promptrepro-\(tag)-\(getpid())-\(UUID().uuidString.prefix(6))"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Whether an external program (gnuplot, pdflatex) is on PATH (`command -v`), for tests that
/// run it where it is installed.
public func toolInstalled(_ name: String) -> Bool {
    (try? runTool(["sh", "-c", "command -v \(name)"]).status == 0) ?? false
}

/// Runs `args` through /usr/bin/env in `dir` (default: the current directory), stdout discarded;
/// returns the exit status and what it wrote to stderr.
public func runTool(_ args: [String], in dir: String? = nil) throws -> (status: Int32, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    if let dir { p.currentDirectoryURL = URL(fileURLWithPath: dir) }
    p.standardOutput = FileHandle.nullDevice
    let err = Pipe()
    p.standardError = err
    try p.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// A deterministic batch of token ids for tests that need no real text (the method matrix): B rows
/// of ids drawn from a tokenizer's vocabulary, right-padded to the longest row, in the layout the
/// trainer builds. Same arguments → same batch on every machine (a fixed counter-based formula,
/// splitmix64 of seed and index).
public struct SyntheticBatch {
    /// Token ids and mask (B × L, right-padded with `padId`).
    public let ids: [Int32], mask: [Float]
    /// T5: target ids (B × T, each ending in eos, −100 padded). Causal (GPT-2): the ids where the
    /// mask is 1, −100 over padding (B × L).
    public let labels: [Int32]
    public let b: Int

    /// - Parameters:
    ///   - vocabSize, padId, eosId: the tokenizer's; ids are drawn from [0, vocabSize) without pad
    ///     and eos; a row ends in eos when the tokenizer has one (as `encode` appends it for T5).
    ///   - rows: B; lengths vary over [maxLength / 2, maxLength], the first row is the longest.
    ///   - causal: GPT-2 causal-LM labels instead of T5 targets (of 2…`targetLength` tokens).
    public init(vocabSize: Int, padId: Int32, eosId: Int32?, rows: Int = 8, maxLength: Int = 96, targetLength: Int = 12,
                causal: Bool, seed: UInt64 = 1) {
        var counter: UInt64 = 0
        func next(below n: Int) -> Int {  // splitmix64(seed, counter) mod n
            counter += 1
            var z = seed &* 0x9E37_79B9_7F4A_7C15 &+ counter &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Int(z % UInt64(n))
        }
        let pool = (0..<Int32(vocabSize)).filter { $0 != padId && $0 != eosId }
        func tokens(_ n: Int) -> [Int32] {
            let body = (0..<(eosId == nil ? n : n - 1)).map { _ in pool[next(below: pool.count)] }
            return eosId.map { body + [$0] } ?? body
        }
        let lengths = (0..<rows).map { $0 == 0 ? maxLength : maxLength / 2 + next(below: maxLength - maxLength / 2 + 1) }
        var ids: [Int32] = [], mask: [Float] = [], labels: [Int32] = []
        for n in lengths {
            ids += tokens(n) + [Int32](repeating: padId, count: maxLength - n)
            mask += [Float](repeating: 1, count: n) + [Float](repeating: 0, count: maxLength - n)
        }
        if causal {
            labels = zip(ids, mask).map { $1 == 1 ? $0 : -100 }
        } else {
            let targets = (0..<rows).map { _ in tokens(2 + next(below: targetLength - 1)) }
            let T = targets.map(\.count).max() ?? 1
            for t in targets { labels += t + [Int32](repeating: -100, count: T - t.count) }
        }
        self.ids = ids; self.mask = mask; self.labels = labels; b = rows
    }
}

/// A child process that the test reaps itself: `posix_spawn` without Foundation's `Process`, whose
/// monitor would reap it at once. After the child exits and before `reap()`, it is a zombie, the
/// state a killed worker is left in when its parent died too and PID 1 does not reap.
public final class UnreapedChild {
    public let pid: Int32
    private var reaped = false

    /// Starts `arguments[0]` (an absolute path) with the rest as its arguments.
    public init(_ arguments: [String]) throws {
        var pid: Int32 = 0
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let rc = posix_spawn(&pid, arguments[0], nil, nil, argv, environ)
        guard rc == 0 else { throw NSError(domain: "UnreapedChild", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "posix_spawn \(arguments[0]): \(String(cString: strerror(rc)))"]) }
        self.pid = pid
        // posix_spawn may return before the child's exec shows in /proc (seen once); wait for it.
        let name = (arguments[0] as NSString).lastPathComponent, end = Date().addingTimeInterval(5)
        while Date() < end, state != "Z",
              !String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self).contains(name) {
            usleep(1_000)
        }
    }

    /// The one-letter state from /proc/PID/stat (proc(5)); nil once the process is gone.
    public var state: Character? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return nil }
        return s[close...].dropFirst(2).first
    }

    /// Waits (up to `seconds`) until the child has exited and is a zombie; false on timeout.
    public func waitUntilZombie(seconds: Double = 10) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if state == "Z" { return true }
            usleep(10_000)
        }
        return false
    }

    /// SIGKILLs the child if it still runs and reaps it (idempotent).
    public func reap() {
        guard !reaped else { return }
        reaped = true
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    deinit { reap() }
}

/// Generated id rows compared as FORMAT.md §"tolerances" states: every row of both sides
/// right-padded with 0 to their common width, then equal. (Transformers stops once every row has
/// emitted `</s>`; a decode that runs on to `max_new_tokens` padding finished rows with 0 matches
/// it, one that keeps emitting tokens after `</s>`, or too few, does not.)
public func paddedToCommonWidth(_ a: [[Int]], _ e: [[Int]]) -> (actual: [[Int]], expected: [[Int]]) {
    let width = max(e.map(\.count).max() ?? 0, a.map(\.count).max() ?? 0)
    func pad(_ r: [[Int]]) -> [[Int]] { r.map { $0 + [Int](repeating: 0, count: width - $0.count) } }
    return (pad(a), pad(e))
}
