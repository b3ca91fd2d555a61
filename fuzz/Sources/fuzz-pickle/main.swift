import FuzzSupport
import WeightsIO

// The pickle machine and torch's state-dict interpretation: the input is `data.pkl` of a torch zip
// (with two small storages it may point at), or, with a leading 'L', the main pickle of a legacy file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let file: [UInt8]
    if size > 0, input[0] == UInt8(ascii: "L") {
        file = LegacyFile.wrap(Array(input.dropFirst()))
    } else {
        file = StoredZip.build([
            ("archive/data.pkl", Array(input)),
            ("archive/byteorder", Array("little".utf8)),
            ("archive/data/0", [UInt8](repeating: 1, count: 64)),
            ("archive/data/1", [UInt8](repeating: 2, count: 16)),
            ("archive/version", Array("3\n".utf8)),
        ])
    }
    let owner = ByteOwner(copying: file)
    if let store = try? TorchCheckpointReader.read(owner: owner, file: "fuzz.pt") { StoreReader.readAll(store) }
    return 0
}

/// A legacy (torch < 1.6) file around a main pickle: magic number, protocol 1001, system info, the
/// state pickle, then an empty storage-key list.
enum LegacyFile {
    static func wrap(_ pickle: [UInt8]) -> [UInt8] {
        // 0x1950a86a20f9469cfc6c as a LONG1, protocol 2.
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        let proto: [UInt8] = [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]                  // BININT2 1001
        let sysInfo: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E]                 // empty dict
        let keys: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x2E]                    // empty list
        return magic + proto + sysInfo + pickle + keys
    }
}
