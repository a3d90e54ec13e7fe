import Training
import XCTest

/// `DecodeBounds`, bench-e2e's floors of a run's decodes, on numbers worked by hand.
final class DecodeBoundsTests: XCTestCase {
    func testBoundsByHand() {
        // 100 GFLOP/s, 10 GB/s. Products bound the weights' phase (500 GFLOP: 5 s against 20 GB:
        // 2 s), bytes the attention's (100 GFLOP: 1 s against 30 GB: 3 s): 5 + 3 = 8 s in sequence;
        // overlapped, the longer of 600 GFLOP (6 s) and 50 GB (5 s).
        let a = DecodeBounds(flops: 600e9, weightFlops: 500e9, readBytes: 50e9, attentionReadBytes: 30e9, gflops: 100, gbs: 10)
        XCTAssertEqual(a.overlapped, 6, accuracy: 1e-12)
        XCTAssertEqual(a.sequential, 8, accuracy: 1e-12)
        // A short decode whose attention phase is its products' (200 GFLOP/s, 16 GB/s): weights
        // max(19/200, 0.7/16) = 0.095 s, the rest max(4/200, 0.1/16) = 0.02 s: 0.115 s, as much as
        // the overlapped bound (23 GFLOP: 0.115 s against 0.8 GB: 0.05 s). Pricing the weights'
        // phase at its FLOPs and the attention's at its bytes only would give 0.10125, below it.
        let b = DecodeBounds(flops: 23e9, weightFlops: 19e9, readBytes: 0.8e9, attentionReadBytes: 0.1e9, gflops: 200, gbs: 16)
        XCTAssertEqual(b.overlapped, 0.115, accuracy: 1e-12)
        XCTAssertEqual(b.sequential, 0.115, accuracy: 1e-12)
        // Weights read at a few FLOPs per byte (100 GFLOP/s, 10 GB/s): 20 GB of weights (2 s)
        // then 20 GB of attention (2 s) = 4 s, the overlapped bound's 40 GB at 10 GB/s too.
        let c = DecodeBounds(flops: 10e9, weightFlops: 8e9, readBytes: 40e9, attentionReadBytes: 20e9, gflops: 100, gbs: 10)
        XCTAssertEqual(c.overlapped, 4, accuracy: 1e-12)
        XCTAssertEqual(c.sequential, 4, accuracy: 1e-12)
    }
}
