import XCTest
@testable import Tensor

/// The read loop of `bench-e2e`'s memory probe adds every value once, vector part and tail
/// (sums worked out by hand), and the probe reports one finite positive rate per pass.
final class MemoryReadProbeTests: XCTestCase {
    func testSumReadsEveryValueOnce() {
        // 1000 halves and 37 quarters: 500 + 9.25 (1037 values: 32 vector iterations and a 13-value tail).
        XCTAssertEqual(MemoryReadProbe.sum(Array(repeating: 0.5, count: 1000) + Array(repeating: 0.25, count: 37)), 509.25)
        // Tail only (fewer than 32 values): 1 + 2 + … + 7 = 28.
        XCTAssertEqual(MemoryReadProbe.sum((1...7).map(Float.init)), 28)
        // Exactly two vector iterations, no tail: 64 · 2 = 128.
        XCTAssertEqual(MemoryReadProbe.sum(Array(repeating: 2, count: 64)), 128)
        XCTAssertEqual(MemoryReadProbe.sum([]), 0)
    }

    func testRateIsOnePositiveValuePerPass() {
        let rates = MemoryReadProbe.gigabytesPerSecond(threads: 2, megabytes: 8, passes: 3)
        XCTAssertEqual(rates.count, 3)
        for r in rates { XCTAssertTrue(r.isFinite && r > 0, "rate \(r)") }
    }
}
