import Foundation
import Harness
import Methods
@testable import Store
import Support
import Tasks
import TestSupport
import Training
import XCTest

/// `SweepRunner.checkPins`' words for a pinned file that is missing, and `FileHashes` through a
/// link: the cases a review fixed without a test of their own.
final class PinsAndHashesTests: XCTestCase {
    /// A link's hash is its target's, and a rewritten target is hashed again: a link's own size and
    /// times do not move when its target is rewritten, so a cache keyed on them kept the old hash.
    /// Expected values are sha256 of "abc" and "abcd" (FIPS 180-2's first example; coreutils sha256sum).
    func testFileHashesFollowLinksToTheirTarget() throws {
        let dir = tempDir("hashlink")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = "\(dir)/adapter_model.safetensors", link = "\(dir)/link.safetensors"
        try "abc".write(toFile: target, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let hashes = FileHashes()
        XCTAssertEqual(hashes.sha256(link), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        try "abcd".write(toFile: target, atomically: false, encoding: .utf8)
        XCTAssertEqual(hashes.sha256(link), "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
        XCTAssertNil(hashes.sha256("\(dir)/absent"))
        try FileManager.default.removeItem(atPath: target)
        XCTAssertNil(hashes.sha256(link), "a dangling link has no hash")
    }

    /// A pinned file that is missing: where the loader would read another file of the split, the
    /// error names it and offers --allow-unpinned (which reads that file); where no file of the
    /// split is there, --allow-unpinned would fail too and is not offered.
    func testAMissingPinnedFileOffersAllowUnpinnedOnlyWhereAnotherFileIsRead() throws {
        let dir = tempDir("pinwords")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let boolq = "\(dir)/data/superglue/boolq"
        try FileManager.default.createDirectory(atPath: boolq, withIntermediateDirectories: true)
        let subset = "\(boolq)/train.subset41.jsonl", val = "\(boolq)/val.jsonl"
        try "{}\n".write(toFile: subset, atomically: false, encoding: .utf8)
        try "{}\n".write(toFile: val, atomically: false, encoding: .utf8)
        let store = try ResultsStore(path: "\(dir)/s.sqlite")
        let lock = "\(dir)/data.lock"
        let pin = { (path: String) throws -> String in "\(try SHA256.hex(file: path))  superglue/boolq/\((path as NSString).lastPathComponent)\n" }
        // The lock pins the full train file (the loader's first choice) as well as the two present.
        try (String(repeating: "0", count: 64) + "  superglue/boolq/train.jsonl\n" + pin(subset) + pin(val)).write(toFile: lock, atomically: false, encoding: .utf8)
        let c = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "boolq", model: "embedded:t5-tiny", k: 8, seed: 1)
        let runs = [RunSpec(spec: "s", profile: "smoke", cell: "pt|boolq|t5-small|k8", variant: "pt", method: "pt", task: "boolq", model: "t5-small",
                            modelSpec: "embedded:t5-tiny", k: 8, seed: 1, sampleSeed: nil, config: c)]
        func refusal() -> String {
            do { try SweepRunner.checkPins(runs, dataDir: "\(dir)/data", lockPath: lock, allowUnpinned: false, store: store); return "accepted" }
            catch { return "\(error)" }
        }
        var why = refusal()
        XCTAssertTrue(why.contains("superglue/boolq/train.jsonl: boolq train file pinned in \(lock) is missing (the runs would read superglue/boolq/train.subset41.jsonl instead)")
                      && why.contains("or pass --allow-unpinned") && why.contains("nothing planned, no stored run superseded"), why)
        XCTAssertNoThrow(try SweepRunner.checkPins(runs, dataDir: "\(dir)/data", lockPath: lock, allowUnpinned: true, store: store))
        // No train file at all: restoring is the only remedy.
        try FileManager.default.removeItem(atPath: subset)
        why = refusal()
        XCTAssertTrue(why.contains("superglue/boolq/train.jsonl: boolq train file pinned in \(lock) is missing; restore it (`make fetch-data`); nothing planned"), why)
        XCTAssertFalse(why.contains("--allow-unpinned") || why.contains("instead"), why)
        // With --allow-unpinned the split with no file is refused too (every run would fail).
        do {
            try SweepRunner.checkPins(runs, dataDir: "\(dir)/data", lockPath: lock, allowUnpinned: true, store: store)
            XCTFail("a split with no file was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("no boolq train file (looked for superglue/boolq/train.jsonl, superglue/boolq/train.subset41.jsonl)"), "\(error)")
        }
    }
}
