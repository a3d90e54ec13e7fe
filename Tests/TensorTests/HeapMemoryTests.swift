import Foundation
import XCTest
@testable import Tensor

/// `HeapMemory.releaseFree` gives freed heap pages back to the OS: with mmap off and no automatic
/// trimming (Tensor.swift's allocator settings), a freed 96 MiB tensor stays resident until it runs.
final class HeapMemoryTests: XCTestCase {
    /// VmRSS of this process in MiB (Linux).
    func residentMiB() throws -> Double {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kb = try XCTUnwrap(Double(line.split(separator: " ").dropFirst().first ?? ""))
        return kb / 1024
    }

    func testReleaseFreeReturnsFreedTensorPages() throws {
        #if os(Linux)
        let count = 96 << 18   // 96 MiB of floats
        var keep: Tensor? = Tensor(zeros: [count])
        let guardBlock = Tensor(zeros: [1024])   // allocated after it: the freed block is not the heap's top
        for i in stride(from: 0, to: count, by: 1024) { keep!.data[i] = 1 }   // every page resident
        let resident = try residentMiB()
        keep = nil
        let afterFree = try residentMiB()
        HeapMemory.releaseFree()
        let afterTrim = try residentMiB()
        XCTAssertGreaterThan(afterFree, resident - 16, "freeing alone keeps the pages (no automatic trim)")
        XCTAssertLessThan(afterTrim, afterFree - 64, "releaseFree gives the freed 96 MiB back (\(afterFree) → \(afterTrim) MiB)")
        XCTAssertEqual(guardBlock.count, 1024)
        #else
        throw XCTSkip("glibc only")
        #endif
    }
}
