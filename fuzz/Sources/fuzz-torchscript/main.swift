import FuzzSupport
import WeightsIO

// A TorchScript archive: the input holds data.pkl, constants.pkl and one code/ module, separated by
// FuzzInput.separator; the walker reads the code's declarations and both pickles.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorchScript(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = FuzzInput.parts(UnsafeRawBufferPointer(start: data, count: size), count: 3)
    let file = StoredZip.build([
        ("archive/data.pkl", parts[0]),
        ("archive/constants.pkl", parts[1]),
        ("archive/code/__torch__/model.py", parts[2]),
        ("archive/byteorder", Array("little".utf8)),
        ("archive/data/0", [UInt8](repeating: 1, count: 64)),
        ("archive/constants/0", [UInt8](repeating: 3, count: 16)),
        ("archive/version", Array("3\n".utf8)),
    ])
    let owner = ByteOwner(copying: file)
    if let store = try? TorchCheckpointReader.read(owner: owner, file: "fuzz.pt") { StoreReader.readAll(store) }
    return 0
}
