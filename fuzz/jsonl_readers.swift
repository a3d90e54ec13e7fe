// libFuzzer target: every dataset reader (SuperGLUE jsonl incl. MultiRC/ReCoRD, SST-2 tsv, AG News
// csv) on arbitrary text: a clear error or rows, never a crash.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReaders(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? Readers.superGLUE(text, path: "fuzz.jsonl")
    _ = try? Readers.multiRC(text, path: "fuzz.jsonl")
    _ = try? Readers.reCoRD(text, path: "fuzz.jsonl")
    _ = try? Readers.tsv(text, path: "fuzz.tsv")
    _ = try? Readers.agNews(text, path: "fuzz.csv")
    return 0
}
