import Foundation
import KinemaCore
@testable import KinemaIO
import KinemaTestSupport
import XCTest

/// Bad input must give a typed `KinemaError`, never a crash or a hang.
final class ImageCorruptionTests: XCTestCase {
    func bytes(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("image/\(name)"))))
    }

    /// Decodes `data`; returns true when it decoded, false when it threw a `KinemaError`.
    @discardableResult
    func assertKinemaError(_ data: [UInt8], _ message: String, engine: InflateEngine = .automatic) -> Bool {
        do {
            if ImageDecoder.format(of: data) == .png {
                _ = try PNGDecoder.decode(data, origin: "fuzz", engine: engine)
            } else {
                _ = try ImageDecoder.decode(data: data, origin: "fuzz")
            }
            return true
        } catch is KinemaError {
        } catch {
            XCTFail("\(message): non-Kinema error \(error)")
        }
        return false
    }

    func testUnknownFormatAndEmptyInput() {
        for data in [[], [0x47, 0x49, 0x46, 0x38, 0x39, 0x61], [0x89, 0x50, 0x4E]] as [[UInt8]] {
            XCTAssertThrowsError(try ImageDecoder.decode(data: data, origin: "x.bin")) { error in
                guard case KinemaError.badFile(let path, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(path, "x.bin")
            }
        }
        XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/kinema.png"))
    }

    func testPNGCRCMismatchIsNamed() throws {
        var data = try bytes("png_c2_d8.png")
        data[20] ^= 0x01  // inside IHDR's body
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, origin: "bad.png")) { error in
            XCTAssertTrue("\(error)".contains("CRC"), "\(error)")
        }
    }

    func testPNGTruncatedAndZipBomb() throws {
        let data = try bytes("png_c6_d8.png")
        for cut in [8, 20, 33, 40, data.count - 12, data.count - 1] {
            XCTAssertThrowsError(try ImageDecoder.decode(data: Array(data[0..<cut]), origin: "cut.png"))
        }
        // A 1×1 grey image whose IDAT inflates to far more than the 2 bytes IHDR implies.
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let t = Array(type.utf8)
            let crc = CRC32.update(CRC32.checksum(t), body)
            let len = UInt32(body.count)
            return [UInt8(len >> 24), UInt8((len >> 16) & 255), UInt8((len >> 8) & 255), UInt8(len & 255)] + t + body
                + [UInt8(crc >> 24), UInt8((crc >> 16) & 255), UInt8((crc >> 8) & 255), UInt8(crc & 255)]
        }
        let bomb = ZlibStream.stored([UInt8](repeating: 0, count: 1 << 20))
        let png = PNGDecoder.signature + chunk("IHDR", [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0])
            + chunk("IDAT", bomb) + chunk("IEND", [])
        for engine in [InflateEngine.automatic, .swift] {
            XCTAssertThrowsError(try PNGDecoder.decode(png, origin: "bomb.png", engine: engine)) { error in
                guard case KinemaError.badFile = error else { return XCTFail("\(error)") }
            }
        }
    }

    func testSwiftInflateMatchesZlibOnStoredAndCompressed() throws {
        let payload = (0..<70000).map { UInt8(truncatingIfNeeded: $0 * 7 + ($0 >> 9)) }
        XCTAssertEqual(try Inflate.zlib(ZlibStream.stored(payload), expectedSize: payload.count, engine: .swift, origin: "t"), payload)
        if let zlib = ZlibLibrary.shared {
            for level in [1, 6, 9] {
                let stream = try zlib.compress(payload, level: level)
                XCTAssertEqual(try Inflate.zlib(stream, expectedSize: payload.count, engine: .swift, origin: "t"), payload)
            }
        }
    }

    func testJPEGRestartOutOfSequence() throws {
        var data = try bytes("jpg_420_rst.jpg")
        guard let at = (0..<(data.count - 1)).first(where: { data[$0] == 0xFF && data[$0 + 1] == 0xD0 }) else {
            return XCTFail("fixture has no RST0")
        }
        data[at + 1] = 0xD3
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, origin: "rst.jpg")) { error in
            XCTAssertTrue("\(error)".contains("restart"), "\(error)")
        }
    }

    func testJPEGTruncations() throws {
        let data = try bytes("jpg_420.jpg")
        for cut in stride(from: 2, to: data.count, by: max(1, data.count / 40)) {
            XCTAssertThrowsError(try ImageDecoder.decode(data: Array(data[0..<cut]), origin: "cut.jpg"), "cut at \(cut)")
        }
    }

    /// Seeded mutations (bit flips, byte overwrites, truncations, length-field corruption).
    func fuzz(_ name: String, cases: Int, seed: UInt64, engine: InflateEngine = .automatic) throws {
        let original = try bytes(name)
        var state = seed
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var decoded = 0
        defer { print("fuzz \(name): \(decoded) of \(cases) mutations still decoded, the rest threw KinemaError") }
        for index in 0..<cases {
            var data = original
            switch next() % 4 {
            case 0:
                for _ in 0..<(1 + next() % 4) {
                    let at = next() % data.count
                    data[at] ^= UInt8(1 << (next() % 8))
                }
            case 1:
                data[next() % data.count] = UInt8(truncatingIfNeeded: next())
            case 2:
                data.removeSubrange((next() % data.count)...)
            default:
                // Length-like fields: overwrite 2 bytes with extreme values.
                let at = next() % (data.count - 1)
                let values: [UInt8] = [0x00, 0xFF, 0x7F, 0x80]
                data[at] = values[next() % 4]
                data[at + 1] = values[next() % 4]
            }
            if assertKinemaError(data, "\(name) case \(index)", engine: engine) { decoded += 1 }
        }
    }

    func testFuzzPNG() throws {
        try fuzz("png_c2_d8_i.png", cases: 1500, seed: 11)
        try fuzz("png_c3_d4.png", cases: 500, seed: 12, engine: .swift)
    }

    func testFuzzPNGWithValidCRCs() throws {
        // Mutate chunk bodies and then fix the CRCs, so that the inflater and filters see corrupt data.
        let original = try bytes("png_c6_d8.png")
        var state: UInt64 = 99
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for index in 0..<1000 {
            var data = original
            let at = 8 + next() % (data.count - 8)
            data[at] ^= UInt8(1 << (next() % 8))
            var p = 8
            while p + 12 <= data.count {
                let length = data[p..<(p + 4)].reduce(0) { $0 << 8 | Int($1) }
                guard p + 12 + length <= data.count else { break }
                let crc = CRC32.checksum(data[(p + 4)..<(p + 8 + length)])
                data[p + 8 + length] = UInt8(crc >> 24)
                data[p + 9 + length] = UInt8((crc >> 16) & 255)
                data[p + 10 + length] = UInt8((crc >> 8) & 255)
                data[p + 11 + length] = UInt8(crc & 255)
                p += 12 + length
            }
            assertKinemaError(data, "crc-fixed case \(index)", engine: index % 2 == 0 ? .swift : .automatic)
        }
    }

    func testFuzzJPEG() throws {
        try fuzz("jpg_420_rst.jpg", cases: 1500, seed: 21)
        try fuzz("jpg_gray.jpg", cases: 500, seed: 22)
        try fuzz("jpg_progressive.jpg", cases: 1000, seed: 23)
    }
}
