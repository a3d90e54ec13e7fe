// What every test target shares: the repository root, the shared data directory beside it (CI
// must have it: a missing one fails there and skips elsewhere), and fresh temporary directories.
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

/// The shared data directory (`<shared>/data`), with `sharedDir`'s CI rule.
public func sharedData(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let dir = try sharedDir(file: file, line: line)
    guard FileManager.default.fileExists(atPath: "\(dir)/data") else {
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("\(dir)/data not found; CI must have ../shared/data", file: file, line: line) }
        throw XCTSkip("\(dir)/data not found")
    }
    return "\(dir)/data"
}

/// A new empty directory under the system temporary directory, named after `tag` and the process.
public func tempDir(_ tag: String) -> String {
    let d = NSTemporaryDirectory() + "promptrepro-\(tag)-\(getpid())-\(UUID().uuidString.prefix(6))"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}
