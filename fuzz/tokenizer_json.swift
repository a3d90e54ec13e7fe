// libFuzzer target: tokenizer.json parsing (Unigram with a precompiled charsmap, BPE) and, when a
// tokenizer is built, encoding and decoding a short text with it.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if let tok = try? Tokenizers.fromJSON(Data(bytes: data, count: size), path: "fuzz/tokenizer.json") {
        let ids = tok.encode("Hello wörld </s> <|endoftext|>  ab")
        _ = tok.decode(ids, skipSpecialTokens: true)
    }
    return 0
}
