import Foundation
import KinemaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens any checkpoint format Kinema reads, choosing by what the path is and by the file's first bytes
/// (the extension alone can lie: `.bin` and `.pt` files are torch zips, and some `.pth` files are renamed
/// safetensors):
/// - a directory, a `.json` index or a file starting with a safetensors header → `SafeTensors.open`;
/// - a zip archive (`PK\u{3}\u{4}`) → `PthFile` (torch.save);
/// - a bare pickle (legacy torch.save) → an error saying so.
public enum Checkpoints {
    public static func open(_ path: String) throws -> any TensorSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KinemaError.io(path: path, reason: "no such file or directory")
        }
        if isDirectory.boolValue || path.hasSuffix(".json") { return try SafeTensors.open(path) }
        let head = try firstBytes(of: path, count: 4)
        if head.count == 4, head == [0x50, 0x4B, 0x03, 0x04] { return try PthFile(path: path) }
        if head.first == 0x80 {
            throw KinemaError.unsupported("\(path): legacy (pre-1.6, non-zip) torch.save format; re-save it with a current torch")
        }
        if path.hasSuffix(".pth") || path.hasSuffix(".pt") {
            // Not a zip, not a pickle: only a safetensors file could still be meant.
            do { return try SafeTensorsFile(path: path) } catch {
                throw KinemaError.badFile(path: path, location: nil, reason: "neither a torch.save zip archive nor a safetensors file (\(error))")
            }
        }
        return try SafeTensorsFile(path: path)
    }

    private static func firstBytes(of path: String, count: Int) throws -> [UInt8] {
        let descriptor = openReadOnly(path)
        guard descriptor >= 0 else {
            throw KinemaError.io(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, count) }
        guard got >= 0 else { throw KinemaError.io(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        return Array(buffer.prefix(got))
    }
}

/// POSIX open, outside `Checkpoints` whose own `open` would shadow it.
private func openReadOnly(_ path: String) -> Int32 { open(path, O_RDONLY | O_CLOEXEC) }
