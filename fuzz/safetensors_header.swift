// libFuzzer target: the safetensors header parser must reject or accept any byte string without
// crashing. Built by `make fuzz` with `swiftc -sanitize=fuzzer,address`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = try? SafeTensorsHeader.parse(UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.safetensors")
    return 0
}
