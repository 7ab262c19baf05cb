import Foundation
import KinemaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Entry points for the safetensors format: open a file, an index or a directory; write a file.
public enum SafeTensors {
    /// Opens a .safetensors file, a .safetensors.index.json, or a directory.
    ///
    /// A directory resolves, in order: exactly one `*.safetensors.index.json` → that index (two or more
    /// indexes are ambiguous and an error); otherwise its `*.safetensors` files: one → that file,
    /// several → merged into one name space, where a name in two files is an error. Sub-directories are
    /// not searched.
    public static func open(_ path: String) throws -> any TensorSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KinemaError.io(path: path, reason: "no such file or directory")
        }
        if !isDirectory.boolValue {
            if path.hasSuffix(".json") { return try ShardedSafeTensors(indexPath: path) }
            return try SafeTensorsFile(path: path)
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            throw KinemaError.io(path: path, reason: "cannot list directory: \(error.localizedDescription)")
        }
        let join = { (name: String) in (path as NSString).appendingPathComponent(name) }
        let indexes = entries.filter { $0.hasSuffix(".safetensors.index.json") }
        if indexes.count > 1 {
            throw KinemaError.badFile(
                path: path, location: nil,
                reason: "several safetensors indexes (\(indexes.joined(separator: ", "))); open one of them directly")
        }
        if let index = indexes.first { return try ShardedSafeTensors(indexPath: join(index)) }
        let files = entries.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.map(join)
        switch files.count {
        case 0:
            throw KinemaError.badFile(path: path, location: nil, reason: "directory holds no .safetensors file or index")
        case 1:
            return try SafeTensorsFile(path: files[0])
        default:
            return try ShardedSafeTensors(mergingShards: files, origin: path)
        }
    }
}

extension SafeTensors {
    /// Writes host tensors (any dtype, any strides; each is written in logical row-major order) and
    /// optional metadata as one .safetensors file.
    ///
    /// Header: compact JSON, "__metadata__" first when non-empty, then tensors in name order, padded
    /// with spaces to a multiple of 8 bytes as the reference writer does. Data: tensors ordered by
    /// element size, largest first, then by name — the reference writer's order — so with the 8-aligned
    /// header every tensor starts at a multiple of its element size and reads back zero-copy.
    /// The file is written beside `path` under a temporary name and renamed into place, so a failed
    /// write never leaves a truncated checkpoint at `path`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        for (name, tensor) in tensors {
            guard name != "__metadata__" else {
                throw KinemaError.invalidArgument("safetensors write \(path): \"__metadata__\" is reserved and cannot name a tensor")
            }
            guard tensor.device == .cpu else {
                throw KinemaError.deviceMismatch(context: "safetensors write \(path), tensor \(name)", expected: .cpu, found: tensor.device)
            }
        }
        let layout = tensors.sorted { left, right in
            let (leftSize, rightSize) = (left.value.dtype.byteSize, right.value.dtype.byteSize)
            return leftSize != rightSize ? leftSize > rightSize : left.key < right.key
        }
        var offsets: [String: (Int, Int)] = [:]
        var running = 0
        for (name, tensor) in layout {
            offsets[name] = (running, running + tensor.byteCount)
            running += tensor.byteCount
        }

        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { JSONText.quoted($0) + ":" + JSONText.quoted(metadata[$0] ?? "") }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        for name in tensors.keys.sorted() {
            guard let tensor = tensors[name], let (begin, end) = offsets[name] else { continue }
            fields.append(
                JSONText.quoted(name) + ":{\"dtype\":\"\(tensor.dtype.safetensorsName)\",\"shape\":["
                    + tensor.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(begin),\(end)]}")
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)

        let temporary = path + ".partial-\(getpid())"
        let output = try OutputFile(path: temporary, finalPath: path)
        do {
            var length = UInt64(headerBytes.count).littleEndian
            try withUnsafeBytes(of: &length) { try output.write($0) }
            try headerBytes.withUnsafeBytes { try output.write($0) }
            for (_, tensor) in layout { try writeLogicalOrder(tensor, to: output) }
            try output.close()
        } catch {
            output.abandon()
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw KinemaError.io(path: path, reason: "cannot move finished file into place: \(reason)")
        }
    }

    /// Streams a tensor's elements in row-major order. Contiguous tensors go out in one write; others
    /// are gathered row by row (a run of the innermost axis when its stride is 1) through a bounded buffer.
    private static func writeLogicalOrder(_ tensor: Tensor, to output: OutputFile) throws {
        let total = tensor.byteCount
        guard total > 0 else { return }
        if tensor.isContiguous {
            try output.write(UnsafeRawBufferPointer(start: tensor.hostPointer, count: total))
            return
        }
        let size = tensor.dtype.byteSize
        let rank = tensor.rank
        let innerLength = tensor.shape[rank - 1]
        let innerStride = tensor.strides[rank - 1]
        let bufferSize = max(1 << 22, innerLength * size)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 64)
        defer { buffer.deallocate() }
        var filled = 0
        var index = [Int](repeating: 0, count: rank)  // only the outer rank-1 axes move
        var position = tensor.offset  // element offset of the current row's first element
        let base = tensor.storage.base
        let rows = total / (innerLength * size)
        for _ in 0..<rows {
            if filled + innerLength * size > bufferSize {
                try output.write(UnsafeRawBufferPointer(start: buffer, count: filled))
                filled = 0
            }
            if innerStride == 1 {
                (buffer + filled).copyMemory(from: base + position * size, byteCount: innerLength * size)
                filled += innerLength * size
            } else {
                for element in 0..<innerLength {
                    (buffer + filled).copyMemory(from: base + (position + element * innerStride) * size, byteCount: size)
                    filled += size
                }
            }
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                position += tensor.strides[axis]
                if index[axis] < tensor.shape[axis] { break }
                position -= tensor.strides[axis] * tensor.shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        try output.write(UnsafeRawBufferPointer(start: buffer, count: filled))
    }
}

/// A file being written with POSIX calls; `abandon` removes it after a failure.
private final class OutputFile {
    let path: String
    let finalPath: String
    private var descriptor: Int32

    init(path: String, finalPath: String) throws {
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw KinemaError.io(path: finalPath, reason: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.finalPath = finalPath
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = Foundation.write(descriptor, next, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw KinemaError.io(path: finalPath, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            next += written
            remaining -= written
        }
    }

    func close() throws {
        let result = Foundation.close(descriptor)
        descriptor = -1
        guard result == 0 else {
            throw KinemaError.io(path: finalPath, reason: "close failed: \(String(cString: strerror(errno)))")
        }
    }

    func abandon() {
        if descriptor >= 0 { _ = Foundation.close(descriptor) }
        descriptor = -1
        unlink(path)
    }

    deinit {
        if descriptor >= 0 { _ = Foundation.close(descriptor) }
    }
}
