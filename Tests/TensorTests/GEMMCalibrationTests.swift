import Foundation
import Support
import Tensor
import XCTest

/// The host calibration's choice rule (hand-worked rates), its file, and that applying a calibrated
/// blocking leaves every product's bits unchanged (mc and nc never change results).
final class GEMMCalibrationTests: XCTestCase {
    let def = GEMMCandidate(kernel: .avx512, blocking: GEMMBlocking(mc: 672, kc: 384, nc: 3072))

    func testChoiceIsTheBestMedianPerRoundRatioAboveTheMargin() throws {
        let a = GEMMCandidate(kernel: .avx512, blocking: GEMMBlocking(mc: 336, kc: 384, nc: 3072))
        let b = GEMMCandidate(kernel: .avx2, blocking: GEMMBlocking(mc: 1020, kc: 256, nc: 3072))
        let c = GEMMCandidate(kernel: .openblas, blocking: nil)
        let base: [Double] = [100, 110, 90]
        // a: ratios 1.04, 1.036…, 1.033… → median 1.036 < 1.05; b: 1.2, 0.909…, 1.2 → 1.2;
        // c: one lucky round (3.0, 0.909…, 1.0) → median 1.0.
        let rates: [(GEMMCandidate, [Double])] = [(def, base), (a, [104, 114, 93]), (b, [120, 100, 108]), (c, [300, 100, 90])]
        let (choice, ratio) = try GEMMCalibration.choose(rates, default: def, margin: 0.05)
        XCTAssertEqual(choice, b)
        XCTAssertEqual(ratio, 1.2, accuracy: 1e-12)
        // Without b, nothing clears the margin: the default stays with ratio 1.
        let (kept, one) = try GEMMCalibration.choose(rates.filter { $0.0 != b }, default: def, margin: 0.05)
        XCTAssertEqual(kept, def)
        XCTAssertEqual(one, 1)
        // a clears a 3 % margin: even round count takes the mean of the middle two.
        let (a3, r3) = try GEMMCalibration.choose([(def, [100, 100, 100, 100]), (a, [103, 105, 104, 110])], default: def, margin: 0.03)
        XCTAssertEqual(a3, a)
        XCTAssertEqual(r3, 1.045, accuracy: 1e-12)
        XCTAssertThrowsError(try GEMMCalibration.choose([(a, [1, 2, 3])], default: def))
        XCTAssertThrowsError(try GEMMCalibration.choose([(def, [1, 2, 3]), (a, [1, 2])], default: def))
    }

    func testFileRoundTripsAndNamesABadFile() throws {
        let dir = NSTemporaryDirectory() + "gemm-cal-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sub/gemm-calibration.json"
        XCTAssertNil(try GEMMCalibrationFile.read(path))
        let host = GEMMCalibration.signature(vendor: "GenuineIntel", family: "6", model: "207", stepping: "2", simd: "avx512f,avx2,fma",
                                             caches: CacheInfo.host)
        let cal = GEMMCalibration(host: host, threads: 2, choice: def, gflops: [def.description: 150], defaultCandidate: def.description,
                                  speedup: 1, measured: "2026-11-30T00:00:00Z", shapes: ["2048x2048x2048"])
        try GEMMCalibrationFile(hosts: [host: cal]).write(path)
        XCTAssertEqual(try GEMMCalibrationFile.read(path)?.hosts[host], cal)
        XCTAssertNil(try GEMMCalibrationFile.read(path)?.hosts[host + "x"])
        // An entry measured for another loop nest (its mc and nc sized other caches) never matches.
        XCTAssertTrue(host.hasSuffix(" nest \(GEMMCalibration.nest)"), host)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try GEMMCalibrationFile.read(path)) { XCTAssertTrue("\($0)".contains(path), "\($0)") }
    }

    func testAppliedBlockingKeepsTheBitsAndIsRecorded() throws {
        guard let k = BLAS.availableKernels.first(where: { $0.tile != nil }), let t = k.tile else {
            throw XCTSkip("no own kernel on this CPU")
        }
        let saved = (BLAS.kernel, BLAS.blockings, BLAS.calibrated)
        defer { BLAS.kernel = saved.0; BLAS.blockings = saved.1; BLAS.calibrated = saved.2 }
        let (m, n, kk) = (300, 700, 900)
        let a = Tensor.uniform([m, kk], lo: -1, hi: 1, key: RNGKey(seed: 3)), w = Tensor.uniform([n, kk], lo: -1, hi: 1, key: RNGKey(seed: 4))
        BLAS.kernel = k
        let before = try linear(a, w).array
        let odd = GEMMCandidate(kernel: k, blocking: GEMMBlocking(mc: 5 * t.mr, kc: t.kc, nc: 3 * t.nr))
        try GEMMCalibration(host: "h", threads: 1, choice: odd, gflops: [:], defaultCandidate: "", speedup: 1, measured: "", shapes: []).apply()
        XCTAssertEqual(BLAS.kernel, k)
        XCTAssertEqual(BLAS.blockings[k], GEMMBlocking(mc: 5 * t.mr, kc: t.kc, nc: 3 * t.nr))
        XCTAssertTrue(BLAS.kernelDescription.hasSuffix("(calibrated)"), BLAS.kernelDescription)
        XCTAssertEqual(try linear(a, w).array, before, "a calibrated mc/nc changed a product's bits")
        // mc that is not a multiple of the tile is refused.
        let bad = GEMMCandidate(kernel: k, blocking: GEMMBlocking(mc: 5 * t.mr + 1, kc: t.kc, nc: 3 * t.nr))
        XCTAssertThrowsError(try GEMMCalibration(host: "h", threads: 1, choice: bad, gflops: [:], defaultCandidate: "", speedup: 1,
                                                 measured: "", shapes: []).apply())
    }

    /// Run records name OpenBLAS's release beside its core (products it takes change bits with
    /// either); the release is read from its build string, hand-written cases.
    func testKernelDescriptionNamesTheOpenBLASRelease() {
        XCTAssertEqual(BLAS.openBLASVersion(config: "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"), "0.3.21")
        XCTAssertEqual(BLAS.openBLASVersion(config: "OpenBLAS 0.3.28.dev DYNAMIC_ARCH"), "0.3.28.dev")
        XCTAssertNil(BLAS.openBLASVersion(config: "NO_LAPACKE Zen"))
        XCTAssertNil(BLAS.openBLASVersion(config: "OpenBLAS"))
        XCTAssertNil(BLAS.openBLASVersion(config: "OpenBLAS DYNAMIC_ARCH"))
        let linked = BLAS.config.split(separator: " ")
        if linked.count > 1, linked[0] == "OpenBLAS" {
            XCTAssertTrue(BLAS.kernelDescription.contains("openblas \(linked[1]) \(BLAS.coreName)"), BLAS.kernelDescription)
        }
    }
}
