import CKinema
import Foundation
import KinemaCore

// zlib streams (RFC 1950) for PNG. zlib itself is loaded at run time (libz.so.1, through the CKinema
// shim) so that the package has no link-time dependency; without it we still write valid PNGs using
// deflate's "stored" blocks (RFC 1951 §3.2.4), which any inflater accepts, only without compression.

/// How a zlib stream's deflate data is produced.
public enum DeflateMode: Sendable, Equatable {
    /// zlib's `compress2` at the given level (0–9) when libz loads, else stored blocks.
    case zlib(level: Int)
    /// Stored (uncompressed) blocks only: no zlib needed, output is predictable in size.
    case stored
}

/// The system zlib, opened once per process.
public final class ZlibLibrary: @unchecked Sendable {
    // The struct holds C function pointers that are immutable after opening, so sharing is safe.
    let functions: ckinema_zlib
    /// The library name that opened.
    public let name: String

    /// Candidates tried in order: the versioned soname every Linux distribution ships, then macOS's.
    public static let candidates = ["libz.so.1", "libz.so", "libz.1.dylib", "libz.dylib"]

    /// The loaded library, or nil when none of the candidates opens.
    public static let shared: ZlibLibrary? = {
        for candidate in candidates {
            var functions = ckinema_zlib()
            if ckinema_zlib_open(candidate, &functions) == 0 { return ZlibLibrary(functions: functions, name: candidate) }
        }
        return nil
    }()

    private init(functions: ckinema_zlib, name: String) {
        self.functions = functions
        self.name = name
    }

    /// A complete zlib stream of `bytes` at `level` (0–9).
    public func compress(_ bytes: [UInt8], level: Int) throws -> [UInt8] {
        guard (0...9).contains(level) else {
            throw KinemaError.invalidArgument("zlib compression level must be 0...9, got \(level)")
        }
        guard let compress2 = functions.compress2, let bound = functions.compress_bound else {
            throw KinemaError.missingLibrary(name: "zlib compress2", searched: [name])
        }
        var capacity = bound(UInt(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(capacity))
        let status = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in
                compress2(out.baseAddress, &capacity, input.baseAddress, UInt(input.count), Int32(level))
            }
        }
        guard status == 0 else {
            throw KinemaError.invalidArgument("zlib compress2 failed with status \(status) on \(bytes.count) bytes")
        }
        output.removeSubrange(Int(capacity)...)
        return output
    }

    /// Inflates a zlib stream whose decompressed size is known exactly (tests and round-trip checks).
    public func uncompress(_ bytes: [UInt8], expectedSize: Int) throws -> [UInt8] {
        guard let inflate = functions.uncompress else {
            throw KinemaError.missingLibrary(name: "zlib uncompress", searched: [name])
        }
        var size = UInt(expectedSize)
        // One spare byte: a stream that inflates to more than expected then fails with Z_BUF_ERROR.
        var output = [UInt8](repeating: 0, count: expectedSize + 1)
        size += 1
        let status = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in inflate(out.baseAddress, &size, input.baseAddress, UInt(input.count)) }
        }
        guard status == 0, Int(size) == expectedSize else {
            throw KinemaError.badFile(
                path: "zlib stream", location: nil,
                reason: "inflate gave status \(status), \(size) bytes (expected \(expectedSize))")
        }
        output.removeLast()
        return output
    }
}

public enum ZlibStream {
    /// Largest payload of one stored block (LEN is 16 bits).
    static let storedBlockLimit = 65535

    /// A zlib stream of `bytes`, compressed as `mode` asks (falling back to stored blocks without zlib).
    public static func encode(_ bytes: [UInt8], mode: DeflateMode) throws -> [UInt8] {
        if case .zlib(let level) = mode, let zlib = ZlibLibrary.shared {
            return try zlib.compress(bytes, level: level)
        }
        return stored(bytes)
    }

    /// A zlib stream made of stored deflate blocks: CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (fastest;
    /// 0x7801 is a multiple of 31 as RFC 1950 requires), blocks of ≤ 65535 bytes, big-endian Adler-32.
    public static func stored(_ bytes: [UInt8]) -> [UInt8] {
        let blocks = max(1, (bytes.count + storedBlockLimit - 1) / storedBlockLimit)
        var out: [UInt8] = [0x78, 0x01]
        out.reserveCapacity(bytes.count + blocks * 5 + 6)
        for block in 0..<blocks {
            let start = block * storedBlockLimit
            let length = min(storedBlockLimit, bytes.count - start)
            // BFINAL in bit 0, BTYPE 00; the rest of the header byte is padding to the byte boundary.
            out.append(block == blocks - 1 ? 1 : 0)
            let len = UInt16(length)
            let nlen = ~len
            out += [UInt8(len & 0xFF), UInt8(len >> 8), UInt8(nlen & 0xFF), UInt8(nlen >> 8)]
            if length > 0 { out += bytes[start..<(start + length)] }
        }
        let adler = Adler32.checksum(bytes)
        out += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return out
    }
}
