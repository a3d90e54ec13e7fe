// safetensors header validation as a pure function of the file's bytes (Foundation only, so the
// libFuzzer target in fuzz/ compiles it directly). Format: u64 little-endian header length N, N
// bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?}, data buffer.
import Foundation

public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public init(path: String, detail: String) {
        self.path = path
        self.detail = detail
    }
    public var description: String { "\(path): \(detail)" }
}

public struct SafeTensorsEntry {
    public let dtype: String
    public let shape: [Int]
    public let begin: Int  // byte offsets into the data buffer
    public let end: Int
}

public enum SafeTensorsHeader {
    public static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    public struct Parsed {
        public let entries: [String: SafeTensorsEntry]
        public let metadata: [String: String]
        public let dataStart: Int
    }

    /// Validates the header of a whole safetensors file; every error names `path` and what is wrong.
    public static func parse(_ file: UnsafeRawBufferPointer, path: String) throws -> Parsed {
        func fail(_ d: String) -> SafeTensorsError { SafeTensorsError(path: path, detail: d) }
        let size = file.count
        guard size >= 8, let base = file.baseAddress else {
            throw fail("truncated: \(size) bytes, a safetensors file starts with an 8-byte header length")
        }
        let n64 = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard n64 > 0, n64 <= UInt64(size - 8), n64 <= 100_000_000 else {
            throw fail("header length \(n64) at byte 0 is impossible for a \(size)-byte file (truncated or not safetensors)")
        }
        let n = Int(n64)
        let headerData = Data(bytes: base + 8, count: n)
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw fail("header (bytes 8..<\(8 + n)) is not valid JSON: \(error.localizedDescription)")
        }
        guard let obj = parsed as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataLength = size - 8 - n
        var entries: [String: SafeTensorsEntry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in obj {
            if name == "__metadata__" {
                guard let md = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in md { meta[k] = (v as? String) ?? "\(v)" }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("entry '\(name)' is not an object") }
            guard let dtype = e["dtype"] as? String else { throw fail("entry '\(name)': missing dtype") }
            guard let esize = dtypeSizes[dtype] else { throw fail("entry '\(name)': unknown dtype '\(dtype)'") }
            guard let shapeAny = e["shape"] as? [Any] else { throw fail("entry '\(name)': missing shape") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = jsonInt(d), v >= 0 else { throw fail("entry '\(name)': shape \(shapeAny) must hold non-negative integers") }
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2, let b = jsonInt(offs[0]), let en = jsonInt(offs[1]) else {
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
            let (bytes, o) = elements.multipliedReportingOverflow(by: esize)
            guard !o, bytes == en - b else {
                throw fail("entry '\(name)': \(dtype) shape \(shape) needs \(o ? "more than Int.max" : "\(bytes)") bytes but data_offsets span \(en - b)")
            }
            entries[name] = SafeTensorsEntry(dtype: dtype, shape: shape, begin: b, end: en)
        }
        let sorted = entries.sorted { $0.value.begin < $1.value.begin }
        for i in 1..<max(sorted.count, 1) where sorted[i].value.begin < sorted[i - 1].value.end {
            throw fail("entries '\(sorted[i - 1].key)' and '\(sorted[i].key)' overlap in the data buffer")
        }
        return Parsed(entries: entries, metadata: meta, dataStart: 8 + n)
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
