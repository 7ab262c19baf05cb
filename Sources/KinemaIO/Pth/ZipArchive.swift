import KinemaCore

// A read-only zip directory over a memory-mapped file, enough for the archives `torch.save` writes
// (PyTorchStreamWriter / miniz): every record STORED (uncompressed), storages padded to 64-byte file
// offsets through the local header's extra field, and a zip64 end record always present (needed
// anyway once a checkpoint passes 4 GiB, as umT5-XXL at ~11 GB does).
//
// Nothing here trusts the file: every offset and length is checked against the mapping before use, with
// overflow-checked arithmetic, and the central directory is cross-checked against each local header.
// Compressed (DEFLATE) and encrypted records are refused with a clear error: torch never writes them,
// and inflating would mean copying tensor data that we want to map zero-copy.

/// One record of the archive: where its bytes lie in the file.
struct ZipEntry: Sendable {
    let name: String
    /// File offset of the first data byte (after the local header).
    let dataOffset: Int
    let size: Int
}

/// Bounds-checked little-endian reads from a byte buffer.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String

    func check(_ offset: Int, _ count: Int, _ what: String) throws {
        let (end, overflow) = offset.addingReportingOverflow(count)
        guard offset >= 0, count >= 0, !overflow, end <= bytes.count else {
            throw KinemaError.badFile(
                path: path, location: "zip offset \(offset)",
                reason: "\(what) (\(count) bytes) runs past the end of the \(bytes.count)-byte file")
        }
    }

    func u16(_ offset: Int, _ what: String) throws -> Int {
        try check(offset, 2, what)
        return Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    func u32(_ offset: Int, _ what: String) throws -> Int {
        try check(offset, 4, what)
        return Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// A 64-bit field; values above Int.max cannot be file offsets and are refused.
    func u64(_ offset: Int, _ what: String) throws -> Int {
        try check(offset, 8, what)
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        guard let result = Int(exactly: value) else {
            throw KinemaError.badFile(path: path, location: "zip offset \(offset)", reason: "\(what) \(value) is out of range")
        }
        return result
    }

    func slice(_ offset: Int, _ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try check(offset, count, what)
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}

enum ZipArchive {
    private static let endSignature = 0x0605_4b50
    private static let zip64EndSignature = 0x0606_4b50
    private static let zip64LocatorSignature = 0x0706_4b50
    private static let centralSignature = 0x0201_4b50
    private static let localSignature = 0x0403_4b50
    /// The zip64 "extended information" extra field.
    private static let zip64ExtraID = 0x0001
    /// More records than any checkpoint has (umT5-XXL has a few hundred); bounds the directory walk.
    static let maxEntries = 1 << 20

    /// Whether the bytes start like a zip archive (a local file header).
    static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes.loadUnaligned(as: UInt32.self) == UInt32(localSignature).littleEndian
    }

    /// Reads the central directory. Names are unique; a duplicate is an error (it would make the
    /// archive ambiguous).
    static func entries(of bytes: UnsafeRawBufferPointer, path: String) throws -> [String: ZipEntry] {
        let r = ByteReader(bytes: bytes, path: path)
        let bad = { (reason: String) in KinemaError.badFile(path: path, location: nil, reason: "not a valid zip archive: \(reason)") }
        guard bytes.count >= 22 else { throw bad("file too short for a zip end record (\(bytes.count) bytes)") }

        // The end record sits in the last 22 + 65535 (max comment) bytes; search backwards.
        var endOffset = -1
        var candidate = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        while candidate >= lowest {
            if try r.u32(candidate, "end record signature") == endSignature {
                let comment = try r.u16(candidate + 20, "comment length")
                if candidate + 22 + comment == bytes.count { endOffset = candidate; break }
            }
            candidate -= 1
        }
        guard endOffset >= 0 else { throw bad("no end-of-central-directory record (truncated or not a zip file)") }

        var count = try r.u16(endOffset + 10, "entry count")
        var directorySize = try r.u32(endOffset + 12, "central directory size")
        var directoryOffset = try r.u32(endOffset + 16, "central directory offset")
        // zip64: the locator lies just before the classic end record and points at the zip64 end record.
        if endOffset >= 20, try r.u32(endOffset - 20, "zip64 locator signature") == zip64LocatorSignature {
            let recordOffset = try r.u64(endOffset - 20 + 8, "zip64 end record offset")
            guard try r.u32(recordOffset, "zip64 end record signature") == zip64EndSignature else {
                throw bad("zip64 locator points at offset \(recordOffset), which holds no zip64 end record")
            }
            count = try r.u64(recordOffset + 32, "zip64 entry count")
            directorySize = try r.u64(recordOffset + 40, "zip64 central directory size")
            directoryOffset = try r.u64(recordOffset + 48, "zip64 central directory offset")
        }
        guard count <= maxEntries, count <= directorySize / 46 else {
            throw bad("entry count \(count) does not fit a \(directorySize)-byte central directory")
        }
        _ = try r.slice(directoryOffset, directorySize, "central directory")

        var result: [String: ZipEntry] = [:]
        var position = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<count {
            let at = "central directory entry \(index) at offset \(position)"
            guard position + 46 <= directoryEnd, try r.u32(position, at) == centralSignature else {
                throw bad("\(at): bad signature or past the directory's end")
            }
            let flags = try r.u16(position + 8, at)
            let method = try r.u16(position + 10, at)
            var compressedSize = try r.u32(position + 20, at)
            var size = try r.u32(position + 24, at)
            let nameLength = try r.u16(position + 28, at)
            let extraLength = try r.u16(position + 30, at)
            let commentLength = try r.u16(position + 32, at)
            var localOffset = try r.u32(position + 42, at)
            let nameBytes = try r.slice(position + 46, nameLength, "\(at) name")
            let name = String(decoding: nameBytes, as: UTF8.self)
            let extra = try r.slice(position + 46 + nameLength, extraLength, "\(at) extra field")
            // zip64 extra: the 8-byte values appear in this order, each only when its 32-bit field is 0xFFFFFFFF.
            let extraReader = ByteReader(bytes: extra, path: path)
            var cursor = 0
            while cursor + 4 <= extra.count {
                let id = try extraReader.u16(cursor, "\(at) extra id")
                let length = try extraReader.u16(cursor + 2, "\(at) extra length")
                if id == zip64ExtraID {
                    var field = cursor + 4
                    let fieldEnd = field + length
                    func next() throws -> Int {
                        guard field + 8 <= fieldEnd else { throw bad("\(at): zip64 extra field too short") }
                        defer { field += 8 }
                        return try extraReader.u64(field, "\(at) zip64 value")
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                cursor += 4 + length
            }
            position += 46 + nameLength + extraLength + commentLength
            guard position <= directoryEnd else { throw bad("\(at) runs past the central directory") }

            guard flags & 1 == 0 else {
                throw KinemaError.unsupported("\(path): zip record \(name) is encrypted")
            }
            guard method == 0 else {
                throw KinemaError.unsupported(
                    "\(path): zip record \(name) is compressed (method \(method)\(method == 8 ? ", DEFLATE" : "")); "
                        + "torch.save writes uncompressed archives and Kinema maps tensors without copying: re-save it with torch.save")
            }
            guard compressedSize == size else {
                throw bad("\(at) (\(name)): stored record has compressed size \(compressedSize) ≠ size \(size)")
            }
            // The local header repeats the name and carries its own extra field (torch's alignment padding).
            let localAt = "local header of \(name) at offset \(localOffset)"
            guard try r.u32(localOffset, localAt) == localSignature else {
                throw bad("\(localAt): bad signature")
            }
            let localNameLength = try r.u16(localOffset + 26, localAt)
            let localExtraLength = try r.u16(localOffset + 28, localAt)
            guard localNameLength == nameLength else { throw bad("\(localAt): name differs from the central directory") }
            let dataOffset = localOffset + 30 + localNameLength + localExtraLength
            _ = try r.slice(dataOffset, size, "data of zip record \(name)")
            guard result[name] == nil else { throw bad("record \(name) appears twice") }
            result[name] = ZipEntry(name: name, dataOffset: dataOffset, size: size)
        }
        return result
    }
}
