// SHA-256 (FIPS 180-4) for data pinning, weight hashes and run records.
import Foundation

public struct SHA256 {
    private var h: [UInt32] = [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update<D: Collection>(_ data: D) where D.Element == UInt8 {
        length &+= UInt64(data.count)
        buffer.append(contentsOf: data)
        if buffer.count >= 64 {
            let full = buffer.count / 64 * 64
            buffer.withUnsafeBufferPointer { p in
                var off = 0
                while off < full { compress(p.baseAddress! + off); off += 64 }
            }
            buffer.removeFirst(full)
        }
    }

    public mutating func update(_ ptr: UnsafeRawBufferPointer) {
        update(ptr.bindMemory(to: UInt8.self))
    }

    private mutating func compress(_ p: UnsafePointer<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = UInt32(p[4 * i]) << 24 | UInt32(p[4 * i + 1]) << 16 | UInt32(p[4 * i + 2]) << 8 | UInt32(p[4 * i + 3])
        }
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ SHA256.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var pad: [UInt8] = [0x80]
        while (buffer.count + pad.count) % 64 != 56 { pad.append(0) }
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        let saved = length
        update(pad)
        length = saved
        return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    }

    public static func hex<D: Collection>(_ data: D) -> String where D.Element == UInt8 {
        var s = SHA256()
        s.update(data)
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// sha256 of a file, streamed in 4 MiB chunks; the error names the path.
    public static func hex(file path: String) throws -> String {
        guard let fh = FileHandle(forReadingAtPath: path) else {
            throw NSError(domain: "SHA256", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path): cannot open for hashing"])
        }
        defer { try? fh.close() }
        var s = SHA256()
        // `read(upToCount:)` throws where `readData(ofLength:)` traps (a directory: signal 4).
        do {
            while let chunk = try fh.read(upToCount: 4 << 20), !chunk.isEmpty { s.update(chunk) }
        } catch {
            throw NSError(domain: "SHA256", code: 2, userInfo: [NSLocalizedDescriptionKey: "\(path): cannot read for hashing (\(error.localizedDescription))"])
        }
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

public func sha256Hex(_ text: String) -> String { SHA256.hex(Array(text.utf8)) }
