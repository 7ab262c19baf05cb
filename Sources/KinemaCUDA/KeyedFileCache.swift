import Foundation

// A folder of small files, each holding a payload under a key text (NVRTC cubins, remembered cuDNN plan
// choices). File layout: the key's UTF-8 length (8 bytes, little-endian), the key, the payload. The file's name
// is a 128-bit hash of the key; a read returns the payload only when the stored key equals the asked one, so a
// hash collision, a truncated or a foreign file reads as a miss. Writes go to a temporary name and are renamed
// into place, so concurrent processes never see half a file. A nil folder (KINEMA_KERNEL_CACHE=off) stores nothing.

struct KeyedFileCache {
    let folder: String?
    /// File name extension, e.g. ".cubin".
    let suffix: String

    func path(key: String) -> String? {
        guard let folder else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in key.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            second = (second &+ UInt64(byte)) &* 0x9E37_79B9_7F4A_7C15
        }
        return folder + "/" + String(hash, radix: 16) + String(second, radix: 16) + suffix
    }

    func read(key: String) -> [UInt8]? {
        guard let path = path(key: key), let data = FileManager.default.contents(atPath: path) else { return nil }
        let keyBytes = Array(key.utf8)
        let bytes = [UInt8](data)
        guard bytes.count >= 8 + keyBytes.count else { return nil }
        let stored = bytes[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard stored == keyBytes.count, Array(bytes[8..<(8 + stored)]) == keyBytes else { return nil }
        return Array(bytes[(8 + stored)...])
    }

    func write(key: String, payload: [UInt8]) {
        guard let path = path(key: key) else { return }
        let keyBytes = Array(key.utf8)
        var data = (0..<8).map { UInt8(truncatingIfNeeded: keyBytes.count >> (8 * $0)) }
        data += keyBytes
        data += payload
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = path + ".tmp\(getpid())"
        if FileManager.default.createFile(atPath: temporary, contents: Data(data)) {
            _ = rename(temporary, path)
        }
    }
}
