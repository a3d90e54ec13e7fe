import Foundation
import Reports
import Store
import TestSupport
import XCTest

final class ParetoTests: XCTestCase {
    /// Hand-made (cost, score) points. Dominated: C (100, 65) and D (1000, 70) by B (100, 70), H
    /// (5, 45) by E (5, 50). A and G are equal and both stay. Front by cost: E, A, G, B, F.
    func testFrontOnHandPoints() {
        let pts = [(10, 60), (100, 70), (100, 65), (1000, 70), (5, 50), (1000, 80), (10, 60), (5, 45)].enumerated().map {
            Pareto.Point(x: Double($0.element.0), y: Double($0.element.1), label: String(UnicodeScalar(65 + $0.offset)!))
        }
        XCTAssertEqual(Pareto.front(pts).map { pts[$0].label }, ["E", "A", "G", "B", "F"])
        XCTAssertEqual(Pareto.front([]), [])
        XCTAssertEqual(Pareto.front([pts[0]]), [0])
    }

    func cell(_ variant: String, params: Double, seconds: Double, score: Double) -> CellResult {
        var c = CellResult(cell: "\(variant)|rte|t5-small|8", variant: variant, method: variant, task: "rte", model: "t5-small", k: 8, seeds: [1, 2],
                           statuses: ["done": 2], trainableParams: Int(params), best: ["accuracy": Stat([score - 1, score + 1])],
                           last: [:], divergedSeeds: [], probe: nil)
        c.extras = ["trainable_params": Stat([params]), "train_seconds": Stat([seconds - 2, seconds + 2])]
        return c
    }

    /// Four cells on RTE. By parameters DPT (1000, 70) beats PT (5000, 65) and LoRA (8000, 60): the
    /// front is DPT, full (6e7, 72). By training seconds PT (40) is the cheapest: PT, DPT, full.
    func testFigureMarksTheFrontOnBothAxes() throws {
        let dir = tempDir("pareto")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cells = [cell("dpt", params: 1000, seconds: 50, score: 70), cell("pt", params: 5000, seconds: 40, score: 65),
                     cell("full", params: 6e7, seconds: 500, score: 72), cell("lora", params: 8000, seconds: 60, score: 60)]
        XCTAssertEqual(Pareto.points(cells, task: "rte", measure: "train_seconds").map(\.x), [50, 40, 500, 60])
        let out = try Pareto.render(spec: "mini", cells: cells, profile: "cpu", outDir: dir)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out[0]))
        let dat = try String(contentsOfFile: "\(dir)/pareto-mini.dat", encoding: .utf8)
        let blocks = dat.components(separatedBy: "\n\n\n").map { $0.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init) }
        XCTAssertEqual(blocks[0], ["1000.0 70.0 \"dpt\"", "5000.0 65.0 \"pt\"", "60000000.0 72.0 \"full\"", "8000.0 60.0 \"lora\""])
        XCTAssertEqual(blocks[1], ["1000.0 70.0", "60000000.0 72.0"])
        XCTAssertEqual(blocks[3], ["40.0 65.0", "50.0 70.0", "500.0 72.0"])
        let gp = try String(contentsOfFile: "\(dir)/pareto-mini.gp", encoding: .utf8)
        XCTAssertTrue(gp.contains("set logscale x") && gp.contains("unset logscale x") && gp.contains("title 'Pareto front'"), gp)
    }
}
