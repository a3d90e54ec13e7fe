// safetensors reader (memory-mapped, validated) and writer.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}?}, then the byte buffer the offsets index.
import Foundation
import Support
import Tensor


public final class SafeTensorsFile {
    public typealias Entry = SafeTensorsEntry

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let base: UnsafeMutableRawPointer
    let length: Int
    let dataStart: Int


    public init(path: String) throws {
        self.path = path
        func fail(_ d: String) -> SafeTensorsError { SafeTensorsError(path: path, detail: d) }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw fail("cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot stat") }
        let size = Int(st.st_size)
        guard size >= 8 else { throw fail("truncated: \(size) bytes, a safetensors file starts with an 8-byte header length") }
        // Private writable mapping: in-place training updates never reach the file.
        guard let m = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw fail("mmap failed (\(String(cString: strerror(errno))))")
        }
        var ok = false
        defer { if !ok { munmap(m, size) } }
        let header = try SafeTensorsHeader.parse(UnsafeRawBufferPointer(start: m, count: size), path: path)
        let entries = header.entries
        let meta = header.metadata
        let n = header.dataStart - 8
        self.entries = entries
        self.metadata = meta
        self.base = m
        self.length = size
        self.dataStart = 8 + n
        ok = true
    }

    deinit { munmap(base, length) }

    public var names: [String] { entries.keys.sorted() }

    /// The tensor `name` as fp32: F32 data is used in place (copy-on-write mapping) when aligned;
    /// F16/BF16/F64 are converted.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafeTensorsError(path: path, detail: "no tensor named '\(name)'") }
        let src = base + dataStart + e.begin
        let n = e.shape.reduce(1, *)
        switch e.dtype {
        case "F32":
            if Int(bitPattern: src) % MemoryLayout<Float>.alignment == 0 {
                return Tensor(shape: e.shape, borrowing: src.assumingMemoryBound(to: Float.self), owner: self)
            }
            let t = Tensor(zeros: e.shape)
            memcpy(t.data, src, n * 4)
            return t
        case "F16":
            let t = Tensor(zeros: e.shape)
            for i in 0..<n { t.data[i] = Float(halfBits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            return t
        case "BF16":
            let t = Tensor(zeros: e.shape)
            for i in 0..<n { t.data[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
            return t
        case "F64":
            let t = Tensor(zeros: e.shape)
            for i in 0..<n { t.data[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            return t
        default:
            throw SafeTensorsError(path: path, detail: "tensor '\(name)' has dtype \(e.dtype); only F32, F16, BF16 (and F64) weights are supported")
        }
    }

    /// Writes tensors as F32 with sorted names (deterministic bytes).
    public static func write(_ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad with spaces: aligned data
        var out = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            out.append(Data(bytes: t.data, count: 4 * t.count))
        }
        let tmp = uniqueTemporaryPath(for: path)  // concurrent writers of one path never share a temporary file
        do { try out.write(to: URL(fileURLWithPath: tmp)) } catch { unlink(tmp); throw error }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw SafeTensorsError(path: path, detail: "cannot rename temporary file into place (\(String(cString: strerror(errno))))")
        }
        removeStaleTemporaries(for: path)
    }
}

/// Removes `path.tmp-PID-*` files (or directories: `EmbeddedBackbones.write`) left by writers that
/// were killed between writing and renaming: their process no longer exists, is a zombie, or PID
/// now belongs to a process that started after the temporary was last written (a reused PID).
/// Temporaries of live writers are kept.
public func removeStaleTemporaries(for path: String) {
    let dir = (path as NSString).deletingLastPathComponent, base = (path as NSString).lastPathComponent + ".tmp-"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? [] where name.hasPrefix(base) {
        guard let pid = Int32(name.dropFirst(base.count).split(separator: "-").first ?? ""), pid != getpid() else { continue }
        let file = (dir as NSString).appendingPathComponent(name)
        let written = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date ?? .distantFuture
        if !ProcessLiveness.isAlive(pid, startedBefore: written) { try? FileManager.default.removeItem(atPath: file) }
    }
}

/// `path.tmp-PID-RANDOM`: unique per process and per call, beside `path` (same file system, so
/// renaming it into place is atomic).
func uniqueTemporaryPath(for path: String) -> String {
    "\(path).tmp-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
}

extension Float {
    /// IEEE half-precision bits to Float (exact).
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
            self = sign != 0 ? -v : v
        } else if exp == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
        }
    }
}
