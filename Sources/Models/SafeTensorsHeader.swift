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
    /// Bits per element of every dtype the safetensors reference library (0.8) knows; sub-byte
    /// types (F4, F6_*) are accepted when a tensor's bits fill whole bytes.
    public static let dtypeBits: [String: Int] = [
        "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
    ]
    /// Bytes per element for the whole-byte dtypes.
    public static var dtypeSizes: [String: Int] { dtypeBits.filter { $0.value % 8 == 0 }.mapValues { $0 / 8 } }

    public struct Parsed {
        public let entries: [String: SafeTensorsEntry]
        public let metadata: [String: String]
        public let dataStart: Int
    }

    /// Validates the header of a whole safetensors file with the reference library's rules
    /// (safetensors `SafeTensors::read_metadata` + `Metadata::validate`), independent of the order of
    /// the header's keys:
    /// * 8-byte little-endian header length N ≤ 100,000,000 with 8 + N ≤ file size; the header is
    ///   UTF-8 JSON, an object of tensors plus an optional `__metadata__` object of string values (or null: none);
    /// * each tensor has a known `dtype`, a `shape` of non-negative integers and `data_offsets`
    ///   [begin, end] of non-negative integers; other keys are ignored, as serde does;
    /// * sorted by (begin, end), the ranges tile the data buffer exactly: the first begins at 0, each
    ///   begins where the previous ends, the last ends at the end of the file. An empty range [b, b]
    ///   (a tensor with a 0 dimension) occupies no bytes and overlaps nothing;
    /// * each range holds exactly shape × dtype bits, a whole number of bytes.
    /// Every error names `path`, and the tensor where one is at fault.
    public static func parse(_ file: UnsafeRawBufferPointer, path: String) throws -> Parsed {
        func fail(_ d: String) -> SafeTensorsError { SafeTensorsError(path: path, detail: d) }
        let size = file.count
        guard size >= 8, let base = file.baseAddress else {
            throw fail("truncated: \(size) bytes, a safetensors file starts with an 8-byte header length")
        }
        let n64 = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard n64 <= 100_000_000 else { throw fail("header length \(n64) exceeds the 100,000,000-byte limit (not safetensors?)") }
        guard n64 <= UInt64(size - 8) else {
            throw fail("header length \(n64) at byte 0 is impossible for a \(size)-byte file (truncated or not safetensors)")
        }
        guard n64 > 0 else { throw fail("header length 0: an empty header is not JSON (not safetensors?)") }
        let n = Int(n64)
        let headerBytes = UnsafeRawBufferPointer(start: base + 8, count: n)
        guard String(validating: headerBytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil else {
            throw fail("header (bytes 8..<\(8 + n)) is not valid UTF-8")
        }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(headerBytes)) } catch {
            throw fail("header (bytes 8..<\(8 + n)) is not valid JSON: \(error.localizedDescription)")
        }
        guard let obj = parsed as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataLength = size - 8 - n
        var entries: [String: SafeTensorsEntry] = [:]
        var meta: [String: String] = [:]
        for name in obj.keys.sorted() {
            let value = obj[name]!
            if name == "__metadata__" {
                // null is no metadata, as the reference's `Option<HashMap<String, String>>` reads it.
                if value is NSNull { continue }
                guard let md = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for k in md.keys.sorted() {
                    guard let v = md[k] as? String else { throw fail("__metadata__['\(k)'] is not a string (the format allows string values only)") }
                    meta[k] = v
                }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("entry '\(name)' is not an object") }
            guard let dtype = e["dtype"] as? String else { throw fail("entry '\(name)': missing dtype") }
            guard let bits = dtypeBits[dtype] else {
                throw fail("entry '\(name)': unknown dtype '\(dtype)' (known: \(dtypeBits.keys.sorted().joined(separator: ", ")))")
            }
            guard let shapeAny = e["shape"] as? [Any] else { throw fail("entry '\(name)': missing shape") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = jsonInt(d), v >= 0 else { throw fail("entry '\(name)': shape \(shapeAny) must hold non-negative integers") }
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2, let b = jsonInt(offs[0]), let en = jsonInt(offs[1]),
                  b >= 0, en >= 0 else {
                throw fail("entry '\(name)': data_offsets must be [begin, end] of non-negative integers")
            }
            var elements = 1
            for d in shape {
                let (r, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("entry '\(name)': shape \(shape) overflows") }
                elements = r
            }
            let (nbits, o) = elements.multipliedReportingOverflow(by: bits)
            guard !o else { throw fail("entry '\(name)': \(dtype) shape \(shape) overflows") }
            guard nbits % 8 == 0 else { throw fail("entry '\(name)': \(dtype) shape \(shape) is \(nbits) bits, not a whole number of bytes") }
            guard en >= b, nbits / 8 == en - b else {
                throw fail("entry '\(name)': \(dtype) shape \(shape) needs \(nbits / 8) bytes but data_offsets [\(b), \(en)] span \(en - b)")
            }
            entries[name] = SafeTensorsEntry(dtype: dtype, shape: shape, begin: b, end: en)
        }
        // A total order (begin, end, name): the verdict never depends on dictionary order.
        let sorted = entries.sorted { ($0.value.begin, $0.value.end, $0.key) < ($1.value.begin, $1.value.end, $1.key) }
        var offset = 0
        var previous: String?
        for (name, e) in sorted {
            if e.end > dataLength {
                throw fail("entry '\(name)': data_offsets [\(e.begin), \(e.end)] outside the \(dataLength)-byte data buffer (file truncated or header lies)")
            }
            if e.begin != offset {
                let what = e.begin < offset ? "overlaps '\(previous ?? "")' (which ends at \(offset))" : "leaves bytes \(offset)..<\(e.begin) unused"
                throw fail("entry '\(name)': data_offsets [\(e.begin), \(e.end)] \(what); tensors must tile the data buffer")
            }
            offset = e.end
            if e.end > e.begin { previous = name }
        }
        guard offset == dataLength else {
            throw fail(offset < dataLength
                       ? "the tensors cover \(offset) of the \(dataLength) data bytes (trailing bytes after the last tensor)"
                       : "data_offsets end at \(offset) but the data buffer holds \(dataLength) bytes (file truncated or header lies)")
        }
        return Parsed(entries: entries, metadata: meta, dataStart: 8 + n)
    }
}

/// An integer JSON value (not a bool, not written as a float, within Int range), as serde reads a usize.
func jsonInt(_ any: Any) -> Int? {
    guard let n = any as? NSNumber else { return nil }
    if String(describing: type(of: any)).contains("Boolean") || ["c", "d", "f"].contains(String(cString: n.objCType)) { return nil }
    let d = n.doubleValue
    guard d.rounded() == d, abs(d) < 9e15 else { return nil }
    return Int(d)
}
