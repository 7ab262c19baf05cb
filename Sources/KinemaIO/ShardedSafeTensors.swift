import Foundation
import KinemaCore

/// A checkpoint split over several .safetensors files, read through one name space.
///
/// Built either from a `*.safetensors.index.json` ({"metadata": {…}, "weight_map": {name: shard}}, the
/// layout transformers and diffusers write) or, by `SafeTensors.open` on a directory, from a set of
/// shards without an index.
///
/// Shards are opened eagerly: validating the index means comparing every shard's names with the map,
/// which needs every header, and opening costs only a header parse plus an mmap (no data is read).
/// After `init` the index and the shards agree exactly: every mapped name exists in its shard, every
/// shard name is mapped to that shard, and no name is in two shards.
public final class ShardedSafeTensors: TensorSource, @unchecked Sendable {
    /// The index path, or the directory for an index-less set of shards.
    public let origin: String
    /// The index's "metadata" object. Values that are not strings (e.g. "total_size": 123) are kept as
    /// their JSON text. Not cross-checked against the shards: writers disagree on what total_size counts.
    public let metadata: [String: String]
    /// Shards in file-name order.
    public let shards: [SafeTensorsFile]
    public let names: [String]
    private let shardOfName: [String: Int]

    /// The largest index file we read; real ones are well under a few MB.
    static let maximumIndexLength = 100_000_000

    public init(indexPath: String) throws {
        let (metadata, weightMap) = try Self.readIndex(indexPath)
        let directory = (indexPath as NSString).deletingLastPathComponent
        // Group names by shard; open each shard once.
        var namesByShard: [String: [String]] = [:]
        for (name, shard) in weightMap {
            namesByShard[shard, default: []].append(name)
        }
        var shards: [SafeTensorsFile] = []
        for shardName in namesByShard.keys.sorted() {
            let mapped = namesByShard[shardName] ?? []
            let example = mapped.min() ?? ""
            let shardPath = try Self.resolve(shardName, in: directory, indexPath: indexPath, example: example)
            guard FileManager.default.fileExists(atPath: shardPath) else {
                throw KinemaError.badFile(
                    path: indexPath, location: "weight_map[\(JSONText.quoted(example))]",
                    reason: "shard \(JSONText.quoted(shardName)) (holding \(mapped.count) tensors) does not exist at \(shardPath)")
            }
            shards.append(try SafeTensorsFile(path: shardPath))
        }
        let shardIndex = Dictionary(uniqueKeysWithValues: namesByShard.keys.sorted().enumerated().map { ($1, $0) })
        var shardOfName: [String: Int] = [:]
        for (name, shardName) in weightMap {
            guard let index = shardIndex[shardName] else { continue }  // every value of weightMap is a key of namesByShard
            guard shards[index].info(name) != nil else {
                throw KinemaError.badFile(
                    path: indexPath, location: "weight_map[\(JSONText.quoted(name))]",
                    reason: "the index puts tensor \(JSONText.quoted(name)) in \(shards[index].path), which has no such tensor")
            }
            shardOfName[name] = index
        }
        for (index, shard) in shards.enumerated() {
            for name in shard.names where shardOfName[name] != index {
                let elsewhere = shardOfName[name].map { " (the index maps it to \(shards[$0].path))" } ?? ""
                throw KinemaError.badFile(
                    path: indexPath, location: "tensor \(JSONText.quoted(name))",
                    reason: "tensor is in shard \(shard.path) but not mapped to it in weight_map\(elsewhere)")
            }
        }
        self.origin = indexPath
        self.metadata = metadata
        self.shards = shards
        self.shardOfName = shardOfName
        self.names = shardOfName.keys.sorted()
    }

    /// Merges shards that have no index; a name in two shards is an error naming both files.
    init(mergingShards paths: [String], origin: String) throws {
        let shards = try paths.sorted().map { try SafeTensorsFile(path: $0) }
        var shardOfName: [String: Int] = [:]
        for (index, shard) in shards.enumerated() {
            for name in shard.names {
                if let other = shardOfName[name] {
                    throw KinemaError.badFile(
                        path: origin, location: "tensor \(JSONText.quoted(name))",
                        reason: "tensor is in both \(shards[other].path) and \(shard.path); without an index the shards "
                            + "must not share names (open one file directly if these are alternative variants)")
                }
                shardOfName[name] = index
            }
        }
        self.origin = origin
        self.metadata = [:]
        self.shards = shards
        self.shardOfName = shardOfName
        self.names = shardOfName.keys.sorted()
    }

    public func info(_ name: String) -> TensorInfo? {
        shardOfName[name].flatMap { shards[$0].info(name) }
    }

    /// The shard that holds `name`.
    public func shard(of name: String) -> SafeTensorsFile? {
        shardOfName[name].map { shards[$0] }
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let index = shardOfName[name] else {
            throw KinemaError.badFile(path: origin, location: "tensor \(JSONText.quoted(name))", reason: "no such tensor in these shards")
        }
        return try shards[index].tensor(name)
    }

    // MARK: - Index file

    private static func readIndex(_ indexPath: String) throws -> (metadata: [String: String], weightMap: [String: String]) {
        func bad(_ location: String?, _ reason: String) -> KinemaError {
            .badFile(path: indexPath, location: location, reason: reason)
        }
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: indexPath)
            if let size = attributes[.size] as? Int, size > maximumIndexLength {
                throw bad(nil, "index is \(size) bytes, over the \(maximumIndexLength)-byte limit")
            }
            data = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        } catch let error as KinemaError {
            throw error
        } catch {
            throw KinemaError.io(path: indexPath, reason: "cannot read index: \(error.localizedDescription)")
        }
        let json = try data.withUnsafeBytes {
            try StrictJSONParser.parse($0, path: indexPath, fileOffset: 0, what: "index")
        }
        guard case .object(let members) = json else {
            throw bad(nil, "index JSON is a \(json.typeName), not an object")
        }
        var metadata: [String: String] = [:]
        var weightMap: [String: String]?
        for member in members {
            switch member.key {
            case "metadata":
                switch member.value {
                case .null: break
                case .object(let fields):
                    for field in fields {
                        if case .string(let text) = field.value { metadata[field.key] = text } else { metadata[field.key] = field.value.compactText }
                    }
                default:
                    throw bad("metadata", "\"metadata\" must be an object, found a \(member.value.typeName)")
                }
            case "weight_map":
                guard case .object(let fields) = member.value else {
                    throw bad("weight_map", "\"weight_map\" must be an object of tensor name → shard file, found a \(member.value.typeName)")
                }
                var map: [String: String] = [:]
                for field in fields {
                    guard case .string(let shard) = field.value else {
                        throw bad("weight_map[\(JSONText.quoted(field.key))]", "shard must be a file name string, found a \(field.value.typeName)")
                    }
                    map[field.key] = shard
                }
                weightMap = map
            default:
                continue  // other top-level keys carry nothing we use
            }
        }
        guard let weightMap else { throw bad(nil, "index has no \"weight_map\"") }
        return (metadata, weightMap)
    }

    /// Resolves a shard name against the index's directory. Shards are files beside (or below) the
    /// index; absolute paths and ".." would let an index point anywhere on disk, so both are refused.
    private static func resolve(_ shard: String, in directory: String, indexPath: String, example: String) throws -> String {
        let components = shard.split(separator: "/", omittingEmptySubsequences: false)
        guard !shard.isEmpty, !shard.hasPrefix("/"), !components.contains(".."), !components.contains("") else {
            throw KinemaError.badFile(
                path: indexPath, location: "weight_map[\(JSONText.quoted(example))]",
                reason: "shard name \(JSONText.quoted(shard)) must be a relative path inside the index's directory")
        }
        return directory.isEmpty ? shard : (directory as NSString).appendingPathComponent(shard)
    }
}
