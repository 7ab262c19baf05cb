// The two checksums the container formats need: CRC-32 (PNG chunks; ISO 3309 / ITU-T V.42, reflected
// polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF) and Adler-32 (the zlib stream trailer,
// RFC 1950 §8.2). Written here so that PNG works without zlib.

public enum CRC32 {
    /// Byte-at-a-time table for the reflected polynomial.
    static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var value = UInt32(index)
        for _ in 0..<8 { value = (value & 1) != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    /// Continues a running CRC (`crc` is a previous result; start from 0).
    public static func update<Bytes: Sequence>(_ crc: UInt32, _ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var value = ~crc
        table.withUnsafeBufferPointer { table in
            for byte in bytes { value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8) }
        }
        return ~value
    }

    public static func checksum<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        update(0, bytes)
    }
}

public enum Adler32 {
    /// Largest prime below 2¹⁶.
    static let modulus: UInt32 = 65521
    /// Bytes summed before reducing: the largest n with 255·n·(n+1)/2 + (n+1)·(modulus−1) < 2³² (zlib's NMAX).
    static let blockLength = 5552

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count {
                let end = min(start + blockLength, buffer.count)
                for index in start..<end {
                    a &+= UInt32(buffer[index])
                    b &+= a
                }
                a %= modulus
                b %= modulus
                start = end
            }
        }
        return (b << 16) | a
    }
}
