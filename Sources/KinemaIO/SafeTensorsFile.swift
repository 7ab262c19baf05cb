import Foundation
import KinemaCore

/// One memory-mapped .safetensors file.
///
/// Opening maps the file and validates the whole header (see SafeTensorsHeader.swift for the rules);
/// it reads no tensor data. `tensor(_:)` returns a host tensor that borrows the mapping without a copy,
/// except when the tensor's bytes are not aligned to its element size (the format does not promise
/// alignment, and typed loads need it): such a tensor is copied into aligned memory once per call.
public final class SafeTensorsFile: TensorSource, @unchecked Sendable {
    public let path: String
    /// The header's "__metadata__" map (empty when absent).
    public let metadata: [String: String]
    public let names: [String]
    /// File size in bytes.
    public let fileSize: Int
    /// File offset of the data section (8 + header length); tensor offsets are relative to it.
    public let dataOffset: Int

    private let mapping: MappedFile
    private let entries: [String: SafeTensorsEntry]

    public init(path: String) throws {
        let mapping = try MappedFile(path: path)
        let header = try SafeTensorsHeader.parse(mapping.bytes, path: path)
        self.path = path
        self.mapping = mapping
        self.entries = header.entries
        self.metadata = header.metadata
        self.names = header.entries.keys.sorted()
        self.fileSize = mapping.length
        self.dataOffset = header.dataStart
    }

    public var origin: String { path }

    public func info(_ name: String) -> TensorInfo? {
        entries[name].map { TensorInfo(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
    }

    /// The tensor's bytes as a range of file offsets, for readers that bypass the mapping (pread,
    /// direct-to-GPU copies).
    public func fileRange(_ name: String) -> Range<Int>? {
        entries[name].map { (dataOffset + $0.begin)..<(dataOffset + $0.end) }
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw KinemaError.badFile(path: path, location: "tensor \(JSONText.quoted(name))", reason: "no such tensor in this file")
        }
        let byteCount = entry.end - entry.begin
        let address = mapping.base + dataOffset + entry.begin
        let storage: Storage
        if Int(bitPattern: address) % entry.dtype.byteSize == 0 {
            storage = Storage(borrowing: address, byteCount: byteCount, device: .cpu, owner: mapping)
        } else {
            storage = try Storage(hostBytes: byteCount)
            storage.base.copyMemory(from: address, byteCount: byteCount)
        }
        do {
            return try Tensor(storage: storage, shape: entry.shape, dtype: entry.dtype)
        } catch {
            // Unreachable for a validated header (byte size == shape product × element size); kept as a
            // typed error rather than a trap because it guards memory safety.
            throw KinemaError.badFile(path: path, location: "tensor \(JSONText.quoted(name))", reason: "\(error)")
        }
    }
}
