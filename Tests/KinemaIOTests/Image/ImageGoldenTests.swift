import Foundation
import KinemaCore
@testable import KinemaIO
import KinemaTestSupport
import XCTest

/// Decoded pixels against Pillow's decode of the same files (scripts/goldens/image_goldens.py).
final class ImageGoldenTests: XCTestCase {
    static let pngNames = [
        "png_c0_d1", "png_c0_d2", "png_c0_d4", "png_c0_d8", "png_c0_d16", "png_c2_d8", "png_c2_d16", "png_c3_d1",
        "png_c3_d2", "png_c3_d4", "png_c3_d8", "png_c4_d8", "png_c4_d16", "png_c6_d8", "png_c6_d16",
        "png_c0_d1_i", "png_c0_d4_i", "png_c0_d16_i", "png_c2_d8_i", "png_c2_d16_i", "png_c3_d2_i", "png_c4_d8_i",
        "png_c6_d16_i",
    ]
    static let jpegNames = ["jpg_444", "jpg_422", "jpg_420", "jpg_420_small", "jpg_gray", "jpg_420_rst", "jpg_444_rst", "jpg_progressive"]

    func expected(_ name: String) throws -> (Tensor, [UInt8]) {
        let source = try Fixtures.open("image/image.safetensors")
        let tensor = try source.tensor(name)
        return (tensor, try tensor.integers().map { UInt8($0) })
    }

    func checkPNG(engine: InflateEngine) throws {
        for name in Self.pngNames {
            let path = Fixtures.path("image/\(name).png")
            let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let image = try PNGDecoder.decode(data, origin: path, engine: engine)
            let (tensor, pixels) = try expected(name)
            XCTAssertEqual([image.height, image.width, 3], tensor.shape, name)
            XCTAssertEqual(image.pixels, pixels, "\(name) (\(engine))")
        }
    }

    func testPNGExactWithZlib() throws {
        try XCTSkipIf(ZlibLibrary.shared == nil, "libz not present")
        try checkPNG(engine: .automatic)
    }

    func testPNGExactWithSwiftInflate() throws {
        try checkPNG(engine: .swift)
    }

    func testJPEGBaselineWithinTolerance() throws {
        for name in Self.jpegNames {
            let image = try ImageDecoder.decode(path: Fixtures.path("image/\(name).jpg"))
            let (tensor, pixels) = try expected(name)
            XCTAssertEqual([image.height, image.width, 3], tensor.shape, name)
            guard image.pixels.count == pixels.count else { continue }
            var maxAbs = 0, sum = 0
            for (a, b) in zip(image.pixels, pixels) {
                let d = abs(Int(a) - Int(b))
                maxAbs = max(maxAbs, d)
                sum += d
            }
            let mean = Double(sum) / Double(pixels.count)
            print("JPEG \(name): max abs \(maxAbs), mean abs \(mean)")
            XCTAssertLessThanOrEqual(maxAbs, Tolerances.jpegMaxAbs, "\(name): max abs \(maxAbs), mean \(mean)")
            XCTAssertLessThanOrEqual(mean, Tolerances.jpegMeanAbs, "\(name): mean abs \(mean)")
        }
    }

    func testEXIFOrientationMatchesExifTranspose() throws {
        for value in 2...8 {
            let path = Fixtures.path("image/jpg_exif\(value).jpg")
            for (mode, key) in [(ImageOrientation.applyEXIF, "jpg_exif\(value)"), (.asStored, "jpg_exif\(value)_stored")] {
                let image = try ImageDecoder.decode(path: path, orientation: mode)
                let (tensor, pixels) = try expected(key)
                XCTAssertEqual([image.height, image.width, 3], tensor.shape, key)
                guard image.pixels.count == pixels.count else { continue }
                let maxAbs = zip(image.pixels, pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(maxAbs, Tolerances.jpegMaxAbs, key)
            }
        }
    }

    func testPNGeXIfOrientationMatchesExifTranspose() throws {
        for value in [3, 6] {
            let path = Fixtures.path("image/png_exif\(value).png")
            for (mode, key) in [(ImageOrientation.applyEXIF, "png_exif\(value)"), (.asStored, "png_exif\(value)_stored")] {
                let image = try ImageDecoder.decode(path: path, orientation: mode)
                let (tensor, pixels) = try expected(key)
                XCTAssertEqual([image.height, image.width, 3], tensor.shape, key)
                XCTAssertEqual(image.pixels, pixels, key)  // PNG is lossless: exact
            }
        }
    }

    func testUnsupportedJPEGCodingIsTyped() throws {
        // Patch SOF0 into SOF3 (lossless): a typed .unsupported, not a crash or a wrong decode.
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("image/jpg_444.jpg"))))
        guard let at = (0..<(data.count - 1)).first(where: { data[$0] == 0xFF && data[$0 + 1] == 0xC0 }) else {
            return XCTFail("no SOF0 in fixture")
        }
        data[at + 1] = 0xC3
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, origin: "lossless.jpg")) { error in
            guard case KinemaError.unsupported = error else { return XCTFail("unexpected \(error)") }
        }
    }

    func testTensorIsChannelFirstInMinusOneToOne() throws {
        let image = RGBImage(width: 2, height: 1, pixels: [0, 255, 128, 10, 20, 30])
        let tensor = try image.tensor()
        XCTAssertEqual(tensor.shape, [3, 1, 2])
        let values = try tensor.floats()
        let expected: [Float] = [0, 10, 255, 20, 128, 30].map { (Float($0) / 255 - 0.5) / 0.5 }
        XCTAssertEqual(values, expected)
        XCTAssertEqual(values[0], -1)
        XCTAssertEqual(values[2], 1)
    }
}
