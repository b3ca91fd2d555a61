import Foundation

/// Opens a sharded safetensors model (`model.safetensors.index.json`, also diffusers'
/// `<name>.fp16.safetensors.index.json`) as one `WeightStore`.
///
/// Index: `{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}`.
///
/// Policy (strict, so a mixed-up folder never loads silently):
/// - shard paths are relative to the index's folder and may not escape it (no absolute paths, no
///   `..` components, no empty names);
/// - every shard is opened (mapped) once;
/// - each name is taken from the shard the map names; a missing tensor is `.corrupt`;
/// - a shard holding a tensor the map does not assign to it is `.corrupt` (a stale or mixed shard);
/// - store names follow the order of `weight_map` in the index file;
/// - `store.metadata` holds the index's `metadata` (strings as they are, numbers by their literal
///   text, booleans as true/false) plus shard `__metadata__` keys the index does not define
///   (first shard wins).
public enum ShardedSafetensors {
    public static func read(indexPath: String) throws -> WeightStore {
        let indexOwner = try MappedFile.map(indexPath)
        let json: JSONValue
        do {
            json = try JSONParser.parse(indexOwner.bytes)
        } catch {
            throw WeightsError(error.kind == .tooDeep ? .limit : .format, file: indexPath,
                               at: "byte \(error.offset)", "invalid index JSON: \(error.message)")
        }
        guard case .object(let top) = json else {
            throw WeightsError(.format, file: indexPath, "the index must be a JSON object, found \(json.kindName)")
        }
        guard let mapValue = top["weight_map"] else {
            throw WeightsError(.format, file: indexPath, "missing \"weight_map\"")
        }
        guard case .object(let weightMap) = mapValue else {
            throw WeightsError(.format, file: indexPath, at: "weight_map", "must be an object, found \(mapValue.kindName)")
        }

        var metadata: [String: String] = [:]
        if let metadataValue = top["metadata"], metadataValue != .null {
            guard case .object(let fields) = metadataValue else {
                throw WeightsError(.format, file: indexPath, at: "metadata", "must be an object, found \(metadataValue.kindName)")
            }
            for (key, value) in fields.members {
                switch value {
                case .string(let text): metadata[key] = text
                case .number(let number): metadata[key] = number.literal
                case .bool(let flag): metadata[key] = flag ? "true" : "false"
                default: continue  // nested values are not facts a WeightStore carries
                }
            }
        }

        let folder = URL(fileURLWithPath: indexPath).deletingLastPathComponent().path
        var shardOrder: [String] = []
        var assigned: [String: String] = [:]  // tensor → shard file
        for (name, value) in weightMap.members {
            guard case .string(let shard) = value else {
                throw WeightsError(.format, file: indexPath, at: "weight_map.\(name)", "shard file must be a string, found \(value.kindName)")
            }
            try checkRelative(shard, indexPath: indexPath, tensor: name)
            if !shardOrder.contains(shard) { shardOrder.append(shard) }
            assigned[name] = shard
        }

        var shards: [String: WeightStore] = [:]
        for shard in shardOrder {
            let path = folder + "/" + shard
            let store = try SafetensorsReader.read(path: path)
            for name in store.names where assigned[name] != shard {
                let owner = assigned[name].map { "the index assigns it to \($0)" } ?? "the index does not list it"
                throw WeightsError(.corrupt, file: path, at: "tensor '\(name)'", "tensor in shard \(shard) but \(owner)")
            }
            for (key, value) in store.metadata where metadata[key] == nil { metadata[key] = value }
            shards[shard] = store
        }

        var result = WeightStore(format: .shardedSafetensors, sources: [indexPath] + shardOrder.map { folder + "/" + $0 },
                                 metadata: metadata)
        for name in weightMap.keys {
            guard let shard = assigned[name], let record = shards[shard]?[name] else {
                throw WeightsError(.corrupt, file: folder + "/" + (assigned[name] ?? "?"), at: "tensor '\(name)'",
                                   "the index maps this tensor to the shard, but the shard does not contain it")
            }
            try result.add(record, file: indexPath)
        }
        return result
    }

    /// Shard names must stay inside the index's folder.
    private static func checkRelative(_ shard: String, indexPath: String, tensor: String) throws {
        let location = "weight_map.\(tensor)"
        guard !shard.isEmpty else { throw WeightsError(.format, file: indexPath, at: location, "empty shard file name") }
        guard !shard.hasPrefix("/"), !shard.utf8.contains(0) else {
            throw WeightsError(.unsafe, file: indexPath, at: location, "shard path \"\(shard)\" must be relative to the index's folder")
        }
        for component in shard.split(separator: "/", omittingEmptySubsequences: false) {
            guard component != "..", !component.isEmpty else {
                throw WeightsError(.unsafe, file: indexPath, at: location, "shard path \"\(shard)\" escapes or is not a plain path inside the index's folder")
            }
        }
    }
}
