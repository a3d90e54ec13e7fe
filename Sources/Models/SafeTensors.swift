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
        // A directory opens read-only and failed later as "mmap failed (No such device)".
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw fail((st.st_mode & S_IFMT) == S_IFDIR ? "is a directory, not a .safetensors file" : "is not a regular file")
        }
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
        do { try out.write(to: URL(fileURLWithPath: tmp)) } catch {
            unlink(tmp)
            throw SafeTensorsError(path: path, detail: "cannot write (\(fileWriteProblem(error)))")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw SafeTensorsError(path: path, detail: "cannot rename temporary file into place (\(String(cString: strerror(errno))))")
        }
        removeStaleTemporaries(for: path)
    }
}

/// This host's tag in temporary names: the first 8 hex digits of the SHA-256 of its host name.
/// A directory shared by several hosts (a cluster's home or scratch file system) holds temporaries
/// of writers whose PIDs mean nothing here; the tag tells them apart.
public let temporaryHostTag = String(SHA256.hex(Array(ProcessInfo.processInfo.hostName.utf8)).prefix(8))

/// Temporaries of another host are removed only when last written this long ago (seconds): their
/// writer's liveness cannot be checked from here, and no write takes a day.
public let foreignTemporaryStaleAfter: TimeInterval = 24 * 3600

/// Removes the temporaries `path.tmp-PID-RANDOM-HOST` (files, or directories:
/// `EmbeddedBackbones.write`) that writers killed between writing and renaming left beside `path`.
/// One of this host goes when its writer is dead: the process no longer exists, is a zombie, or
/// PID now belongs to a process that started after the temporary was last written (a reused PID).
/// One of another host goes when last written over `foreignTemporaryStaleAfter` ago. Names of the
/// older form `path.tmp-PID-RANDOM` count as this host's; names of neither form are left alone.
/// Temporaries of live writers, and of this process, are kept.
public func removeStaleTemporaries(for path: String) {
    let dir = (path as NSString).deletingLastPathComponent, base = (path as NSString).lastPathComponent + ".tmp-"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? [] where name.hasPrefix(base) {
        guard let (pid, host) = parseTemporarySuffix(name.dropFirst(base.count)), pid != getpid() else { continue }
        let file = (dir as NSString).appendingPathComponent(name)
        guard let written = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date else { continue }
        let stale = host == nil || host == temporaryHostTag
            ? !ProcessLiveness.isAlive(pid, startedBefore: written)
            : Date().timeIntervalSince(written) > foreignTemporaryStaleAfter
        if stale { try? FileManager.default.removeItem(atPath: file) }
    }
}

/// `PID-RANDOM-HOST` or `PID-RANDOM` → (PID, HOST or nil): PID decimal without sign or leading
/// zero and above 0, RANDOM 1 to 8 hex digits, HOST 8 hex digits; nil for anything else.
func parseTemporarySuffix(_ suffix: Substring) -> (Int32, String?)? {
    let parts = suffix.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2 || parts.count == 3 else { return nil }
    let hex = { (s: Substring) in s.allSatisfy { $0.isASCII && $0.isHexDigit && !$0.isUppercase } }
    guard let first = parts[0].first, first != "0", parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
          let pid = Int32(parts[0]), pid > 0,
          (1...8).contains(parts[1].count), hex(parts[1]) else { return nil }
    if parts.count == 2 { return (pid, nil) }
    guard parts[2].count == 8, hex(parts[2]) else { return nil }
    return (pid, String(parts[2]))
}

/// `path.tmp-PID-RANDOM-HOST`: unique per process and per call, beside `path` (same file system,
/// so renaming it into place is atomic); HOST is `temporaryHostTag`.
func uniqueTemporaryPath(for path: String) -> String {
    "\(path).tmp-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))-\(temporaryHostTag)"
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
