import FuzzSupport
import WeightsIO

// The zip central directory and local headers, then every member's bytes (stored or inflated, CRC checked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZip(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let owner = ByteOwner(copying: UnsafeBufferPointer(start: data, count: size))
    guard let archive = try? ZipArchive(owner: owner, file: "fuzz.zip") else { return 0 }
    var limits = ZipLimits()
    limits.maxInflatedBytes = 1 << 20
    limits.maxInflatedDataBytes = 64 << 20  // the harness tests the parser, not the allocator
    let budget = ZipInflateBudget(limits: limits)
    for entry in archive.entries {
        if entry.isStored { _ = try? archive.storedBytes(entry, verifyCRC: true) }
        _ = try? archive.memberBytes(entry, budget: budget, verifyCRC: true)
        _ = try? archive.contents(entry, maxBytes: 1 << 20)
    }
    // The whole torch reader on top, since the zip layer is what it trusts.
    if let store = try? TorchCheckpointReader.read(owner: owner, file: "fuzz.pt") { StoreReader.readAll(store) }
    return 0
}
