import Foundation
import KinemaCore

/// A PyTorch checkpoint written by `torch.save` (the zip format of torch ≥ 1.6), memory-mapped.
///
/// Layout inside the archive (the top folder is any name, usually the file's stem or `archive`):
/// `<top>/data.pkl` (the pickled object), `<top>/data/<key>` (one raw storage per key, little-endian,
/// exactly numel × element size bytes), `<top>/byteorder` ("little"; absent in old files), `<top>/version`.
///
/// Opening reads the zip directory and the pickle (with the restricted `Unpickler`: nothing is ever
/// executed) and validates every tensor view against its storage; it reads no tensor data. Tensors are
/// exposed by state-dict key — nested dicts flattened with ".", a top-level `{"state_dict": …}` or
/// `{"model": …}` wrapper removed — as zero-copy strided views into the mapping, with the strides and
/// storage offset `_rebuild_tensor_v2` recorded (a transposed tensor stays transposed; tensors that shared
/// a storage still share it). Non-tensor leaves (epoch counters, strings) are skipped.
public final class PthFile: TensorSource, @unchecked Sendable {
    public let path: String
    public let names: [String]
    private let mapping: MappedFile
    private let tensors: [String: PickleTensor]
    /// storage key → its record in the archive
    private let storages: [String: ZipEntry]

    /// Nesting of dicts/lists flattened into keys; deeper structures are refused (also stops cycles).
    static let maxNesting = 32

    public init(path: String) throws {
        let mapping = try MappedFile(path: path)
        let bytes = mapping.bytes
        guard ZipArchive.looksLikeZip(bytes) else {
            if bytes.first == 0x80 {
                throw KinemaError.unsupported(
                    "\(path): legacy (pre-1.6, non-zip) torch.save format; re-save it with a current torch")
            }
            throw KinemaError.badFile(path: path, location: nil, reason: "not a zip archive (a torch.save file starts with \"PK\")")
        }
        let entries = try ZipArchive.entries(of: bytes, path: path)
        let pickles = entries.keys.filter { name in
            name.hasSuffix("/data.pkl") && name.dropLast("/data.pkl".count).allSatisfy { $0 != "/" }
        }
        guard pickles.count == 1, let pickleName = pickles.first, let pickle = entries[pickleName] else {
            throw KinemaError.badFile(
                path: path, location: nil,
                reason: "expected exactly one <folder>/data.pkl record in the archive, found \(pickles.count)")
        }
        let top = String(pickleName.dropLast("data.pkl".count))  // "<folder>/"
        if let order = entries[top + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order.dataOffset..<(order.dataOffset + order.size)]), as: UTF8.self)
            guard text == "little" else {
                throw KinemaError.unsupported("\(path): byteorder is '\(text.prefix(16))'; only little-endian (the torch default) checkpoints are supported, big-endian storages would need byte swapping")
            }
        }
        var unpickler = Unpickler(
            bytes: UnsafeRawBufferPointer(rebasing: bytes[pickle.dataOffset..<(pickle.dataOffset + pickle.size)]),
            path: path, location: pickleName)
        defer { unpickler.release() }
        var found: [String: PickleTensor] = [:]
        try PthFile.flatten(PthFile.unwrapped(try unpickler.load(), path: path), prefix: "", depth: 0, into: &found, path: path)

        var storages: [String: ZipEntry] = [:]
        var storageTypes: [String: DType] = [:]
        for (name, tensor) in found {
            let storage = tensor.storage
            guard let entry = entries[top + "data/" + storage.key] else {
                throw KinemaError.badFile(path: path, location: name, reason: "storage record \(top)data/\(storage.key) is missing from the archive")
            }
            if let previous = storageTypes[storage.key], previous != tensor.dtype {
                throw KinemaError.badFile(
                    path: path, location: name,
                    reason: "storage \(storage.key) is used as both \(previous.rawValue) and \(tensor.dtype.rawValue)")
            }
            let (expected, overflow) = storage.byteCount
            guard !overflow, expected == entry.size else {
                throw KinemaError.badFile(
                    path: path, location: name,
                    reason: "storage data/\(storage.key) holds \(entry.size) bytes, but its \(storage.numel) \(storage.dtype?.rawValue ?? "untyped byte") elements need \(overflow ? "more than Int.max" : String(expected))")
            }
            guard storage.dtype != nil || entry.size % tensor.dtype.byteSize == 0 else {
                throw KinemaError.badFile(
                    path: path, location: name,
                    reason: "untyped storage data/\(storage.key) of \(entry.size) bytes is not a whole number of \(tensor.dtype.rawValue) elements")
            }
            try PthFile.validateView(tensor, name: name, path: path)
            storageTypes[storage.key] = tensor.dtype
            storages[storage.key] = entry
        }
        self.path = path
        self.mapping = mapping
        self.tensors = found
        self.storages = storages
        self.names = found.keys.sorted()
    }

    public var origin: String { path }

    public func info(_ name: String) -> TensorInfo? {
        tensors[name].map { TensorInfo(name: name, dtype: $0.dtype, shape: $0.shape) }
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let record = tensors[name], let entry = storages[record.storage.key] else {
            throw KinemaError.badFile(path: path, location: "tensor \(name)", reason: "no such tensor in this checkpoint")
        }
        let dtype = record.dtype
        let address = mapping.base + entry.dataOffset
        let storage: Storage
        if Int(bitPattern: address) % dtype.byteSize == 0 {
            storage = Storage(borrowing: address, byteCount: entry.size, device: .cpu, owner: mapping)
        } else {
            // torch aligns storages to 64 bytes; other zip writers may not. Typed loads need alignment.
            storage = try Storage(hostBytes: entry.size)
            storage.base.copyMemory(from: address, byteCount: entry.size)
        }
        do {
            return try Tensor(storage: storage, shape: record.shape, strides: record.strides, offset: record.offset, dtype: dtype)
        } catch {
            throw KinemaError.badFile(path: path, location: "tensor \(name)", reason: "\(error)")
        }
    }

    /// The storage record of a tensor as a file byte range (for readers that bypass the mapping).
    public func storageRange(_ name: String) -> Range<Int>? {
        guard let record = tensors[name], let entry = storages[record.storage.key] else { return nil }
        return entry.dataOffset..<(entry.dataOffset + entry.size)
    }

    // MARK: structure

    /// `{"state_dict": {...}}` / `{"model": {...}}` (optionally beside non-tensor metadata) → the inner dict.
    static func unwrapped(_ root: PickleValue, path: String) throws -> PickleDict {
        guard case .dict(let dict) = root else {
            throw KinemaError.badFile(path: path, location: "data.pkl", reason: "the pickled object is a \(root.kind), not a dict of tensors")
        }
        let hasTopLevelTensor = dict.entries.contains { if case .tensor = $0.value { return true }; return false }
        guard !hasTopLevelTensor else { return dict }
        for wrapper in ["state_dict", "model"] {
            for entry in dict.entries {
                if case .string(wrapper) = entry.key, case .dict(let inner) = entry.value { return inner }
            }
        }
        return dict
    }

    static func flatten(_ dict: PickleDict, prefix: String, depth: Int, into found: inout [String: PickleTensor], path: String) throws {
        guard depth < maxNesting else {
            throw KinemaError.badFile(path: path, location: prefix, reason: "dicts nested deeper than \(maxNesting) levels")
        }
        for (key, value) in dict.entries {
            let part: String
            switch key {
            case .string(let text): part = text
            case .int(let number): part = String(number)
            default:
                throw KinemaError.badFile(path: path, location: prefix.isEmpty ? "data.pkl" : prefix, reason: "dict key is a \(key.kind), not a string")
            }
            let name = prefix.isEmpty ? part : prefix + "." + part
            switch value {
            case .tensor(let tensor):
                guard found[name] == nil else {
                    throw KinemaError.badFile(path: path, location: name, reason: "two tensors flatten to the same name")
                }
                found[name] = tensor
            case .dict(let inner):
                try flatten(inner, prefix: name, depth: depth + 1, into: &found, path: path)
            default:
                continue  // metadata (numbers, strings, lists of them) is not a tensor
            }
        }
    }

    /// Checks that the view lies inside its storage, with overflow-checked arithmetic (the numbers come
    /// from the file and may be anything).
    static func validateView(_ tensor: PickleTensor, name: String, path: String) throws {
        let fail = { (reason: String) in KinemaError.badFile(path: path, location: "tensor \(name)", reason: reason) }
        guard tensor.shape.count == tensor.strides.count else {
            throw fail("size \(tensor.shape) and stride \(tensor.strides) have different ranks")
        }
        guard tensor.shape.count <= 16 else { throw fail("rank \(tensor.shape.count) is more than 16") }
        guard tensor.shape.allSatisfy({ $0 >= 0 }), tensor.offset >= 0 else {
            throw fail("negative size \(tensor.shape) or storage offset \(tensor.offset)")
        }
        guard tensor.strides.allSatisfy({ $0 >= 0 }) else { throw fail("negative stride \(tensor.strides)") }
        if tensor.shape.contains(0) { return }
        var last = tensor.offset
        var count = 1
        for (size, stride) in zip(tensor.shape, tensor.strides) {
            let (span, spanOverflow) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, sumOverflow) = last.addingReportingOverflow(span)
            let (product, countOverflow) = count.multipliedReportingOverflow(by: size)
            guard !spanOverflow, !sumOverflow, !countOverflow else {
                throw fail("view \(tensor.shape) / stride \(tensor.strides) is too large for its storage of \(tensor.storageElements) elements")
            }
            last = sum
            count = product
        }
        // Stride-0 (expanded) views may have more elements than the storage, but never more bytes than memory.
        guard !count.multipliedReportingOverflow(by: tensor.dtype.byteSize).overflow else {
            throw fail("view \(tensor.shape) has too many elements for its storage")
        }
        guard last < tensor.storageElements else {
            throw fail(
                "view \(tensor.shape) / stride \(tensor.strides) at offset \(tensor.offset) reaches element \(last), "
                    + "but storage data/\(tensor.storage.key) holds \(tensor.storageElements) elements")
        }
    }
}
