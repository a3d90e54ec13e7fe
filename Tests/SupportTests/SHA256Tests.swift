import Support
import XCTest

final class SHA256Tests: XCTestCase {
    /// FIPS 180-2 appendix B test vectors, plus a multi-block message fed in odd chunks.
    func testKnownAnswers() {
        XCTAssertEqual(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var s = SHA256()
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        var i = 0
        while i < a.count { let n = min(777, a.count - i); s.update(a[i..<(i + n)]); i += n }
        XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// A directory (or anything unreadable) where a file is hashed is an error naming it, not a
    /// trap: a read that hashed data files stopped with signal 4.
    func testHashingADirectoryThrows() {
        let dir = NSTemporaryDirectory() + "sha-dir-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try SHA256.hex(file: dir)) { XCTAssertTrue("\($0)".contains(dir), "\($0)") }
    }
}
