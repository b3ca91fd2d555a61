import Foundation
import XCTest
@testable import WeightsIO

final class SafetensorsShardedTests: XCTestCase {
    /// transformers' `save_pretrained(max_shard_size=...)` output opened as one store equals the
    /// same state dict saved in one file.
    func testTransformersShardsMatchSingleFile() throws {
        let store = try ShardedSafetensors.read(indexPath: SafetensorsFixtures.path("sharded/model.safetensors.index.json"))
        let full = try SafetensorsReader.read(path: SafetensorsFixtures.path("sharded_full.safetensors"))
        XCTAssertEqual(store.format, .shardedSafetensors)
        XCTAssertEqual(store.sources.count, 3, "index + 2 shards")
        XCTAssertEqual(Set(store.names), Set(full.names))
        XCTAssertEqual(store.names, store.names.sorted(), "weight_map order (transformers sorts it)")
        XCTAssertEqual(store.metadata["total_size"], "22720")
        XCTAssertEqual(store.metadata["format"], "pt")
        XCTAssertEqual(store.totalBytes, 22720)
        for name in full.names {
            let a = try XCTUnwrap(store[name]), b = try XCTUnwrap(full[name])
            XCTAssertEqual(a.dtype, b.dtype)
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertEqual(Array(a.storage.buffer), Array(b.storage.buffer), name)
        }
        XCTAssertEqual(Set(store.records.values.map { ObjectIdentifier($0.storage.owner) }).count, 2, "each shard mapped once")
    }

    private func withIndex(_ json: String, _ body: (String) throws -> Void) throws {
        let folder = try SafetensorsFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            try FileManager.default.copyItem(atPath: SafetensorsFixtures.path("sharded/" + shard), toPath: folder + "/" + shard)
        }
        let path = folder + "/model.safetensors.index.json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        try body(path)
    }

    /// The real index with one mapping rewritten.
    private func editedIndex(_ edit: (inout String) -> Void) throws -> String {
        var text = String(decoding: try SafetensorsFixtures.bytes("sharded/model.safetensors.index.json"), as: UTF8.self)
        edit(&text)
        return text
    }

    func testRejectsPathsThatEscapeTheFolder() throws {
        for bad in ["../model-00001-of-00002.safetensors", "/etc/passwd", "a/../../x.safetensors", "sub//x"] {
            let json = try editedIndex { $0 = $0.replacingOccurrences(of: "\"model-00001-of-00002.safetensors\"", with: "\"\(bad)\"") }
            try withIndex(json) { path in
                assertSafetensorsError(.unsafe, bad) { try ShardedSafetensors.read(indexPath: path) }
            }
        }
    }

    func testRejectsTensorsMissingFromTheirShard() throws {
        let json = try editedIndex {
            $0 = $0.replacingOccurrences(of: "\"weight_map\": {", with: "\"weight_map\": {\n    \"ghost.weight\": \"model-00002-of-00002.safetensors\",")
        }
        try withIndex(json) { path in
            assertSafetensorsError(.corrupt, "tensor 'ghost.weight'") { try ShardedSafetensors.read(indexPath: path) }
        }
    }

    func testRejectsShardTensorsTheIndexDoesNotAssignToIt() throws {
        // Move one tensor's mapping to the other shard: the first shard now holds an unlisted tensor.
        let json = try editedIndex {
            $0 = $0.replacingOccurrences(of: "\"embeddings.position_embedding.weight\": \"model-00001-of-00002.safetensors\"",
                                         with: "\"embeddings.position_embedding.weight\": \"model-00002-of-00002.safetensors\"")
        }
        try withIndex(json) { path in
            assertSafetensorsError(.corrupt, "the index assigns it to model-00002") { try ShardedSafetensors.read(indexPath: path) }
        }
        let dropped = try editedIndex {
            $0 = $0.replacingOccurrences(of: "\"embeddings.position_embedding.weight\": \"model-00001-of-00002.safetensors\",", with: "")
        }
        try withIndex(dropped) { path in
            assertSafetensorsError(.corrupt, "the index does not list it") { try ShardedSafetensors.read(indexPath: path) }
        }
    }

    func testRejectsMalformedIndexes() throws {
        try withIndex("{\"metadata\":{}}") { path in assertSafetensorsError(.format, "missing \"weight_map\"") { try ShardedSafetensors.read(indexPath: path) } }
        try withIndex("{\"weight_map\":{\"a\":1}}") { path in assertSafetensorsError(.format, "must be a string") { try ShardedSafetensors.read(indexPath: path) } }
        try withIndex("{\"weight_map\":{},\"weight_map\":{}}") { path in
            assertSafetensorsError(.format, "duplicate key") { try ShardedSafetensors.read(indexPath: path) }
        }
        try withIndex("{\"weight_map\":{\"a\":\"missing.safetensors\"}}") { path in
            assertSafetensorsError(.io, "cannot open") { try ShardedSafetensors.read(indexPath: path) }
        }
    }
}
