import Foundation
import XCTest

/// `bench --core-only --reference PY` (issue #21 item 0): torch's GEMM rates come from one child
/// per round, interleaved with ours and OpenBLAS's, and `core_over_best` is the median over the
/// rounds of ours ÷ the round's fastest reference. The reference here is a stand-in script whose
/// rates are known: round 1 reports torch far faster than anything (so torch is the best), round
/// 2 far slower (so OpenBLAS is).
final class BenchSgemmTests: XCTestCase {
    func fakeReference(_ dir: String, body: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/python"
        try ("#!/bin/bash\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    func testTorchRatesAreInterleavedPerRoundAndTheBestIsTakenPerRound() throws {
        let dir = NSTemporaryDirectory() + "bench-sgemm-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // $1 is bench/pytorch_reference.py; the rest are its arguments.
        let python = try fakeReference(dir, body: """
            [ "$2 $3" = "--child gemm" ] || exit 3
            echo call >> \(dir)/calls
            n=$(wc -l < \(dir)/calls)
            if [ "$n" = 1 ]; then r=1000000; else r=0.001; fi
            [ "$9" = "--attention" ] || exit 4
            echo '{"2048x2048x2048": {"gflops": '$r'}, "2848x512x2048": {"gflops": '$r'}, "2848x2048x512": {"gflops": '$r'}, "attention": {"356x356x64": {"gflops": '$r'}, "356x64x356:nn": {"gflops": '$r'}, "356x64x356:tn": {"gflops": '$r'}}}'
            """)
        let (rc, out) = try runCLIText(["bench", "--core-only", "--repeats", "2", "--threads", "1", "--reference", python], stdout: true)
        XCTAssertEqual(rc, 0, out)
        let calls = try String(contentsOfFile: dir + "/calls", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(calls.count, 2, "one torch child per round")
        let core = (try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any])["core"] as! [String: Any]
        let sgemm = core["sgemm"] as! [String: [String: Any]], heads = core["attention"] as! [String: [String: Any]]
        XCTAssertEqual(Set(sgemm.keys), ["2048x2048x2048", "2848x512x2048", "2848x2048x512"])
        // The per-head attention products: 64 units (batch 8 × 8 heads) of the named shape each.
        XCTAssertEqual(Set(heads.keys), ["356x356x64", "356x64x356:nn", "356x64x356:tn"])
        XCTAssertEqual(heads["356x356x64"]?["n"] as? Int, 356)
        XCTAssertEqual(heads["356x64x356:tn"]?["k"] as? Int, 356)
        for g in heads.values { XCTAssertEqual(g["units"] as? Int, 64) }
        for (shape, g) in sgemm.merging(heads, uniquingKeysWith: { a, _ in a }) {
            XCTAssertEqual(g["rounds"] as? Int, 2)
            XCTAssertEqual(g["torch_gflops_all"] as? [Double], [1_000_000, 0.001], shape)
            let ours = try XCTUnwrap(g["core_gflops_all"] as? [Double]), blas = try XCTUnwrap(g["openblas_gflops_all"] as? [Double])
            XCTAssertEqual(ours.count, 2); XCTAssertEqual(blas.count, 2)
            // Round 1: torch is the best reference; round 2: OpenBLAS. Median of two = their mean.
            let expected = (ours[0] / 1_000_000 + ours[1] / blas[1]) / 2
            XCTAssertEqual(try XCTUnwrap(g["core_over_best"] as? Double), expected, accuracy: 0.0015, shape)
            let range = try XCTUnwrap(g["core_over_best_range"] as? [Double])
            XCTAssertEqual(range[0], ours[0] / 1_000_000, accuracy: 0.0015)
            XCTAssertEqual(range[1], ours[1] / blas[1], accuracy: 0.0015)
            XCTAssertEqual(g["best_of"] as? String, "openblas, torch")
            // Each round's steal share of the machine's CPU time (/proc/stat), a fraction, one per round.
            let steal = try XCTUnwrap(g["steal_share_all"] as? [Any], shape)
            XCTAssertEqual(steal.count, 2, shape)
            if FileManager.default.fileExists(atPath: "/proc/stat") {
                for v in steal { XCTAssertTrue((v as? Double).map { (0...1).contains($0) } ?? (v is NSNull), "\(shape): \(v)") }
            }
        }
    }

    func testAFailingReferenceStopsTheBenchWithTheFix() throws {
        let dir = NSTemporaryDirectory() + "bench-sgemm-fail-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let python = try fakeReference(dir, body: "echo 'ModuleNotFoundError: torch' >&2; exit 1\n")
        let (rc, err) = try runCLIText(["bench", "--core-only", "--repeats", "1", "--threads", "1", "--reference", python], stdout: false)
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("make bench-reference"), err)
    }
}
