import Foundation
import XCTest

/// The shared directory (data, tokenizers, parity fixtures): $PROMPTREPRO_SHARED or ../shared.
/// Under CI=true a missing directory fails the test instead of skipping it.
func sharedDir(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let env = ProcessInfo.processInfo.environment
    let candidates = [env["PROMPTREPRO_SHARED"], URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared").standardized.path].compactMap { $0 }
    for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
    if env["CI"] == "true" {
        XCTFail("shared directory not found (looked at \(candidates)); CI must have ../shared", file: file, line: line)
    }
    throw XCTSkip("shared directory not found at \(candidates)")
}

func readJSON(_ path: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
}

func doubles(_ any: Any?) -> [Double]? {
    guard let a = any as? [Any] else { return nil }
    var out: [Double] = []
    for v in a {
        if let d = v as? Double { out.append(d) } else if let i = v as? Int { out.append(Double(i)) } else if let n = v as? NSNumber { out.append(n.doubleValue) } else { return nil }
    }
    return out
}
