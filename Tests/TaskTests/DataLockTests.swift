import Foundation
import Tasks
import TestSupport
import XCTest

/// `data lock` hashes what the readers read. A data directory assembled from symbolic links (a
/// common way to add one task's files beside shared ones) once pinned only its real files: the
/// enumeration skipped linked directories, and a lock written from it unpinned every linked file.
final class DataLockTests: XCTestCase {
    func testLinkedDirectoriesArePinned() throws {
        let root = NSTemporaryDirectory() + "datalock-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/elsewhere/cb", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/data/toy", withIntermediateDirectories: true)
        try "a".write(toFile: "\(root)/elsewhere/cb/val.jsonl", atomically: true, encoding: .utf8)
        try "b".write(toFile: "\(root)/data/toy/train.jsonl", atomically: true, encoding: .utf8)
        try "notes".write(toFile: "\(root)/data/SOURCES.md", atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: "\(root)/data/cb", withDestinationPath: "\(root)/elsewhere/cb")
        try fm.createSymbolicLink(atPath: "\(root)/data/toy/loop", withDestinationPath: "\(root)/data")  // a cycle
        let got = try DataFiles.hashes(under: "\(root)/data")
        XCTAssertEqual(got.map(\.0), ["cb/val.jsonl", "toy/train.jsonl"])
        // sha256("a") and sha256("b") as coreutils sha256sum prints them.
        XCTAssertEqual(got.map(\.1), ["ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
                                      "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"])
    }
}

/// A `labels:` list with a class the validation split never has (a walkthrough's `[1, 0, 2]` for
/// SST-2) is said on load: macro-F1 counts the phantom class with F1 0 (66.67 for perfect
/// predictions), silently before.
final class AbsentLabelTests: XCTestCase {
    func testDeclaredLabelsMissingFromTheRowsAreListed() throws {
        let sst2 = try TaskRegistry.definition("sst2")
        let data = try DataLoader.load(sst2, split: .validation, dataDir: sharedData())
        XCTAssertTrue(DataLoader.absentLabels(sst2, rows: data.rows).isEmpty, "SST-2's dev split has both labels")
        var edited = sst2
        edited.labels = [.int(1), .int(0), .int(2)]
        let absent = DataLoader.absentLabels(edited, rows: data.rows)
        XCTAssertEqual(absent.map(\.element), [.int(2)])
        XCTAssertEqual(absent.map(\.offset), [2])
        XCTAssertTrue(DataLoader.absentLabels(try TaskRegistry.definition("record"), rows: data.rows).isEmpty, "no labels declared")
    }

}
