import FuzzSupport
import WeightsIO

// The safetensors header (length prefix, JSON, dtypes, shapes, offsets) and every tensor it describes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let owner = ByteOwner(copying: UnsafeBufferPointer(start: data, count: size))
    if let store = try? SafetensorsReader.read(owner: owner, file: "fuzz.safetensors") {
        StoreReader.readAll(store)
    }
    return 0
}
