import Foundation
import Tensor
import TestSupport
import XCTest

/// `promptrepro calibrate` writes this host's entry, and a later process applies it at start-up
/// (recorded in `bench`'s machine section) unless PROMPTREPRO_CALIBRATION=off.
final class CalibrateCLITests: XCTestCase {
    func testCalibrationIsWrittenAndAppliedAtStartUp() throws {
        let dir = NSTemporaryDirectory() + "calibrate-cli-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["PROMPTREPRO_CACHE": dir, "PROMPTREPRO_THREADS": "1"]
        let (rc, log) = try runCLIText(["calibrate", "--rounds", "1"], stdout: false, env: env)
        XCTAssertEqual(rc, 0, log)
        let file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/gemm-calibration.json"))) as! [String: Any]
        let hosts = file["hosts"] as! [String: [String: Any]]
        XCTAssertEqual(hosts.count, 1)
        let choice = hosts.values.first!["choice"] as! [String: Any]
        let kernel = choice["kernel"] as! String
        func machine(_ extra: [String: String]) throws -> [String: Any] {
            let (rc, out) = try runCLIText(["bench", "--core-only", "--repeats", "1"], stdout: true, env: env.merging(extra) { _, b in b })
            XCTAssertEqual(rc, 0)
            return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any])["machine"] as! [String: Any]
        }
        let on = try machine([:])
        XCTAssertEqual(on["gemm_kernel"] as? String, kernel)
        XCTAssertTrue((on["gemm_calibration"] as? String ?? "").hasPrefix(kernel), "\(on["gemm_calibration"] ?? "")")
        if let mc = choice["mc"] as? Int { XCTAssertTrue((on["gemm_blocking"] as? String ?? "").hasPrefix("mc \(mc) "), "\(on)") }
        XCTAssertEqual(try machine(["PROMPTREPRO_CALIBRATION": "off"])["gemm_calibration"] as? String, "none")
        // A calibration of another host type is not applied.
        let text = try String(contentsOfFile: dir + "/gemm-calibration.json", encoding: .utf8)
        let other = text.replacingOccurrences(of: "family ", with: "family 9")
        try other.write(toFile: dir + "/gemm-calibration.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try machine([:])["gemm_calibration"] as? String, "none")
        // PROMPTREPRO_GEMM=auto is the default: the calibration applies (it turned it off).
        try text.write(toFile: dir + "/gemm-calibration.json", atomically: true, encoding: .utf8)
        XCTAssertTrue((try machine(["PROMPTREPRO_GEMM": "auto"])["gemm_calibration"] as? String ?? "").hasPrefix(kernel))
        // A file that does not read is ignored with a warning (every command, `--help` and
        // `calibrate` included, ended with an error), and `calibrate` replaces it.
        try "{\"hosts\": {".write(toFile: dir + "/gemm-calibration.json", atomically: true, encoding: .utf8)
        let (hrc, help) = try runCLIText(["--help"], stdout: false, env: env)
        XCTAssertEqual(hrc, 0, help)
        // One line naming the file once, with one remedy (it named the file twice and gave two).
        let warning = help.split(separator: "\n").first { $0.hasPrefix("warning: ") && $0.contains("gemm-calibration.json") }.map(String.init) ?? ""
        XCTAssertTrue(warning.contains("\(dir)/gemm-calibration.json: not a calibration file") && warning.contains("ignored"), help)
        XCTAssertEqual(warning.components(separatedBy: "gemm-calibration.json").count, 2, warning)
        XCTAssertFalse(warning.contains("delete it"), warning)
        XCTAssertEqual(try machine([:])["gemm_calibration"] as? String, "none")
        let (crc, clog) = try runCLIText(["calibrate", "--rounds", "1"], stdout: false, env: env)
        XCTAssertEqual(crc, 0, clog)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/gemm-calibration.json.unreadable"), clog)
        XCTAssertNotEqual(try machine([:])["gemm_calibration"] as? String, "none")  // its choice may differ from the first's
    }
}

/// A binary whose Swift code was built for Haswell, started on a CPU without those instructions,
/// died with SIGILL and no word: a check before any Swift code names what is missing (exit 70).
/// No CPU here lacks them, so the test tells the check to pretend.
final class BuildISACheckTests: XCTestCase {
    func testACPUWithoutTheBuildISAIsNamed() throws {
        try XCTSkipUnless(BuildISA.name.contains("haswell"), "built for baseline x86-64: nothing to check")
        let (rc, log) = try runCLIText(["info", "--help"], stdout: false, env: ["PROMPTREPRO_TEST_PRETEND_CPU_LACKS": "bmi2,movbe"])
        XCTAssertEqual(rc, 70, log)
        XCTAssertTrue(log.contains("built for x86-64 Haswell") && log.contains("lacks bmi2 movbe") && log.contains("PROMPTREPRO_PORTABLE=1"), log)
        let (ok, _) = try runCLIText(["info", "--help"], stdout: false)
        XCTAssertEqual(ok, 0)
    }
}

/// Values the environment and the count options do not take stop the command naming them (they
/// were ignored or clamped without a word: `--threads 0` ran one thread while the record said 0,
/// PROMPTREPRO_POOL=x ran the spinning pool); a bf16 kernel this CPU lacks is a warning only (bf16
/// is opt-in; one environment may serve nodes of several CPU types).
final class EnvironmentCheckTests: XCTestCase {
    func testUnknownValuesAreRefusedByName() throws {
        for (name, value, expected) in [("PROMPTREPRO_POOL", "x", "PROMPTREPRO_POOL=x: use dispatch"),
                                         ("PROMPTREPRO_DECODE_GROUP_ROWS", "-1", "PROMPTREPRO_DECODE_GROUP_ROWS=-1: not a non-negative integer"),
                                         ("PROMPTREPRO_BF16_KERNEL", "bogus", "PROMPTREPRO_BF16_KERNEL=bogus: use avx512_bf16 or amx_bf16")] {
            let (rc, log) = try runCLIText(["info", "--help"], stdout: false, env: [name: value])
            XCTAssertEqual(rc, 2, "\(name)=\(value): \(log)")
            XCTAssertTrue(log.contains(expected), log)
        }
        for (name, value) in [("PROMPTREPRO_POOL", "spin"), ("PROMPTREPRO_POOL", "dispatch"), ("PROMPTREPRO_DECODE_GROUP_ROWS", ""),
                              ("PROMPTREPRO_DECODE_GROUP_ROWS", "0")] {
            let (rc, log) = try runCLIText(["info", "--help"], stdout: false, env: [name: value])
            XCTAssertEqual(rc, 0, "\(name)=\(value): \(log)")
        }
        if let lacking = BF16Products.Kernel.allCases.first(where: { !BF16Products.availableKernels.contains($0) }) {
            let (rc, log) = try runCLIText(["info", "--help"], stdout: false, env: ["PROMPTREPRO_BF16_KERNEL": lacking.rawValue])
            XCTAssertEqual(rc, 0, log)
            XCTAssertTrue(log.contains("warning: PROMPTREPRO_BF16_KERNEL=\(lacking.rawValue): this CPU runs") && log.contains("ignored"), log)
        }
        for args in [["bench-gemm", "--threads", "0"], ["bench-gemm", "--threads=-5"], ["sweep", "table1", "--workers", "0", "--dry-run"]] {
            let (rc, log) = try runCLIText(args, stdout: false)
            XCTAssertEqual(rc, 64, "\(args): \(log)")
            XCTAssertTrue(log.contains("is not a positive integer"), log)
        }
        // More threads than the pool has are refused: 2⁶⁰ overflowed the work split, ran no work
        // and stored the run as diverged (loss NaN at step 1).
        for args in [["bench-gemm", "--threads", "1152921504606846976"], ["bench-gemm", "--threads", "257"], ["sweep", "table1", "--threads", "600", "--workers", "2", "--dry-run"]] {
            let (rc, log) = try runCLIText(args, stdout: false)
            XCTAssertEqual(rc, 64, "\(args): \(log)")
            XCTAssertTrue(log.contains("at most 256"), log)
        }
        let (big, bigLog) = try runCLIText(["info", "--help"], stdout: false, env: ["PROMPTREPRO_THREADS": "100000"])
        XCTAssertEqual(big, 2, bigLog)
        XCTAssertTrue(bigLog.contains("PROMPTREPRO_THREADS=100000: at most 256"), bigLog)
        // An empty value is the default for every variable (a template's PROMPTREPRO_THREADS=${N:-}
        // was refused while PROMPTREPRO_GEMM= was accepted).
        for name in ["PROMPTREPRO_THREADS", "PROMPTREPRO_CALIBRATION", "PROMPTREPRO_PACK_FROZEN", "PROMPTREPRO_GEMM", "PROMPTREPRO_POOL"] {
            let (rc, log) = try runCLIText(["info", "--help"], stdout: false, env: [name: ""])
            XCTAssertEqual(rc, 0, "\(name)='': \(log)")
        }
        // An empty PROMPTREPRO_CACHE is the default cache too: it made the calibration file
        // relative to the working directory (a junk one there was read and warned about).
        let cwd = tempDir("emptycache")
        defer { try? FileManager.default.removeItem(atPath: cwd) }
        try "junk".write(toFile: cwd + "/gemm-calibration.json", atomically: true, encoding: .utf8)
        let (crc0, cacheLog) = try runCLIText(["info", "--help"], stdout: false, cwd: cwd, env: ["PROMPTREPRO_CACHE": ""])
        XCTAssertEqual(crc0, 0, cacheLog)
        XCTAssertFalse(cacheLog.contains("gemm-calibration.json"), cacheLog)
    }
}

/// `tokenize` names what is wrong with its texts file (a lone surrogate escape, an empty file, a
/// number among the texts and an object without "texts" all printed one "expected a list" line).
final class TokenizeInputTests: XCTestCase {
    func testTextsFileProblemsAreNamed() throws {
        let dir = NSTemporaryDirectory() + "tokenize-input-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (text, expected) in [(#"["a\ud800b"]"#, "not valid JSON (a lone surrogate escape"), ("", "not valid JSON (empty file)"),
                                 (#"["a", 3]"#, "text 1 is not a string (a number)"), (#"["a", true]"#, "text 1 is not a string (a boolean)"),
                                 (#""abc""#, "expected a JSON list of strings or {\"texts\": [...]}, found a string"),
                                 // A valid pair, or an escaped backslash before "ud800", is no lone surrogate: the parser's own error.
                                 (#"["\ud83d\ude00" 3]"#, "not valid JSON (The"), (#"["C:\\ud800" "x"]"#, "not valid JSON (The"),
                                 (#"{"x": 1}"#, "expected a JSON list of strings or {\"texts\": [...]}, found an object without a \"texts\" list")] {
            let path = "\(dir)/t.json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let (rc, log) = try runCLIText(["tokenize", "--tokenizer", "byte", "--texts", path], stdout: false)
            XCTAssertEqual(rc, 1, log)
            XCTAssertTrue(log.contains("\(path): \(expected)"), "\(text): \(log)")
        }
        try Data([0x5B, 0x22, 0xFF, 0x22, 0x5D]).write(to: URL(fileURLWithPath: "\(dir)/t.json"))  // ["\xFF"]
        let (rc, log) = try runCLIText(["tokenize", "--tokenizer", "byte", "--texts", "\(dir)/t.json"], stdout: false)
        XCTAssertEqual(rc, 1)
        XCTAssertTrue(log.contains("not valid UTF-8 text"), log)
    }
}
