// safetensors reader (memory-mapped, validated) and writer.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}?}, then the byte buffer the offsets index.
import Foundation
import Tensor

public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "\(path): \(detail)" }
}

public final class SafeTensorsFile {
    public struct Entry {
        public let dtype: String
        public let shape: [Int]
        public let begin: Int  // byte offsets into the data buffer
        public let end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    let base: UnsafeMutableRawPointer
    let length: Int
    let dataStart: Int

    static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

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
        let n = Int(UInt64(littleEndian: m.loadUnaligned(as: UInt64.self)))
        guard n > 0, n <= size - 8, n <= 100_000_000 else {
            throw fail("header length \(n) at byte 0 is impossible for a \(size)-byte file (truncated or not safetensors)")
        }
        let headerData = Data(bytes: m + 8, count: n)
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw fail("header (bytes 8..<\(8 + n)) is not valid JSON: \(error.localizedDescription)")
        }
        guard let obj = parsed as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataLength = size - 8 - n
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in obj {
            if name == "__metadata__" {
                guard let md = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in md { meta[k] = (v as? String) ?? "\(v)" }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("entry '\(name)' is not an object") }
            guard let dtype = e["dtype"] as? String else { throw fail("entry '\(name)': missing dtype") }
            guard let esize = SafeTensorsFile.dtypeSizes[dtype] else { throw fail("entry '\(name)': unknown dtype '\(dtype)'") }
            guard let shapeAny = e["shape"] as? [Any] else { throw fail("entry '\(name)': missing shape") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = jsonInt(d), v >= 0 else {
                    throw fail("entry '\(name)': shape \(shapeAny) must hold non-negative integers")
                }
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2,
                  let b = jsonInt(offs[0]), let en = jsonInt(offs[1]) else {
                throw fail("entry '\(name)': data_offsets must be [begin, end]")
            }
            guard b >= 0, b <= en, en <= dataLength else {
                throw fail("entry '\(name)': data_offsets [\(b), \(en)] outside the \(dataLength)-byte data buffer (file truncated or header lies)")
            }
            var elements = 1
            for d in shape {
                let (r, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("entry '\(name)': shape \(shape) overflows") }
                elements = r
            }
            guard elements.multipliedReportingOverflow(by: esize).partialValue == en - b, !elements.multipliedReportingOverflow(by: esize).overflow else {
                throw fail("entry '\(name)': \(dtype) shape \(shape) needs \(elements * esize) bytes but data_offsets span \(en - b)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, begin: b, end: en)
        }
        // Entries must not overlap.
        let sorted = entries.sorted { $0.value.begin < $1.value.begin }
        for i in 1..<max(sorted.count, 1) where sorted[i].value.begin < sorted[i - 1].value.end {
            throw fail("entries '\(sorted[i - 1].key)' and '\(sorted[i].key)' overlap in the data buffer")
        }
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
        let tmp = path + ".tmp-\(getpid())"
        try out.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw SafeTensorsError(path: path, detail: "cannot rename temporary file into place (\(String(cString: strerror(errno))))")
        }
    }
}

/// An integer JSON value (not a bool, not fractional, within Int range).
func jsonInt(_ any: Any) -> Int? {
    guard let n = any as? NSNumber else { return nil }
    if String(describing: type(of: any)).contains("Boolean") || String(cString: n.objCType) == "c" { return nil }
    let d = n.doubleValue
    guard d.rounded() == d, abs(d) < 9e15 else { return nil }
    return Int(d)
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
