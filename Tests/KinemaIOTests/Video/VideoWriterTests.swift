import Foundation
import KinemaCore
@testable import KinemaIO
import KinemaTestSupport
import XCTest

final class VideoWriterTests: XCTestCase {
    /// A deterministic RGB test pattern with gradients, hard edges and noise.
    static func pattern(width: Int, height: Int, frames: Int, seed: UInt64 = 1) -> [[UInt8]] {
        var state = seed
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        return (0..<frames).map { t in
            var bytes = [UInt8](repeating: 0, count: width * height * 3)
            for y in 0..<height {
                for x in 0..<width {
                    let p = (y * width + x) * 3
                    bytes[p] = UInt8((x * 255) / max(width - 1, 1))
                    bytes[p + 1] = UInt8(((y + t * 3) * 40) & 0xFF)
                    bytes[p + 2] = (x + y) % 7 == 0 ? next() : UInt8((x * y + t * 17) & 0xFF)
                }
            }
            return bytes
        }
    }

    func temporaryDirectory() throws -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("kinema-video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    // MARK: checksums

    func testChecksumKnownAnswers() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        XCTAssertEqual(CRC32.checksum(Array("IEND".utf8)), 0xAE42_6082) // every PNG ends with this CRC
        XCTAssertEqual(Adler32.checksum(Array("Wikipedia".utf8)), 0x11E6_0398)
        XCTAssertEqual(Adler32.checksum([]), 1)
        // Long input crosses the deferred-modulo block boundary.
        let long = [UInt8](repeating: 0xFF, count: 100_000)
        var (a, b): (UInt64, UInt64) = (1, 0)
        for byte in long {
            a = (a + UInt64(byte)) % 65521
            b = (b + a) % 65521
        }
        XCTAssertEqual(Adler32.checksum(long), UInt32(b << 16 | a))
    }

    // MARK: zlib streams

    func testStoredStreamInflatesWithZlib() throws {
        guard let zlib = ZlibLibrary.shared else { throw XCTSkip("zlib is not installed") }
        for count in [0, 1, 65535, 65536, 200_001] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
            let stream = ZlibStream.stored(bytes)
            XCTAssertTrue(try zlib.uncompress(stream, expectedSize: count) == bytes, "\(count) bytes")
            XCTAssertEqual((Int(stream[0]) << 8 | Int(stream[1])) % 31, 0, "FCHECK")
        }
    }

    // MARK: PNG

    func checkPNG(_ file: [UInt8], expected rgb: [UInt8], width: Int, height: Int) throws {
        let chunks = try TestPNG.chunks(file)
        XCTAssertEqual(chunks.first?.type, "IHDR")
        let header = chunks[0].data
        XCTAssertEqual(Int(TestPNG.be32(header, 0)), width)
        XCTAssertEqual(Int(TestPNG.be32(header, 4)), height)
        XCTAssertEqual(Array(header[8...]), [8, 2, 0, 0, 0])
        let idat = chunks.filter { $0.type == "IDAT" }.flatMap(\.data)
        guard let zlib = ZlibLibrary.shared else { throw XCTSkip("zlib is not installed; chunk CRCs were checked") }
        let inflated = try zlib.uncompress(idat, expectedSize: (width * 3 + 1) * height)
        XCTAssertTrue(try TestPNG.unfilter(inflated, width: width, height: height) == rgb, "decoded pixels differ")
    }

    func testPNGRoundTripsThroughZlib() throws {
        for (width, height) in [(1, 1), (7, 5), (33, 17)] {
            let frame = Self.pattern(width: width, height: height, frames: 1)[0]
            for mode in [DeflateMode.zlib(level: 6), .zlib(level: 0), .stored] {
                let file = try PNGEncoder.encode(rgb: frame, width: width, height: height, deflate: mode)
                try checkPNG(file, expected: frame, width: width, height: height)
            }
        }
    }

    func testPNGFiltersRoundTrip() throws {
        // Each filter type on its own, then the adaptive choice, through the test's unfilter.
        let (width, height) = (64, 48)
        let frame = Self.pattern(width: width, height: height, frames: 1)[0]
        for only in [0, 1, 2, 3, 4, nil] {
            let filtered = PNGEncoder.filteredScanlines(rgb: frame, width: width, height: height, only: only)
            if let only {
                XCTAssertEqual(Set((0..<height).map { filtered[$0 * (width * 3 + 1)] }), [UInt8(only)])
            }
            XCTAssertTrue(try TestPNG.unfilter(filtered, width: width, height: height) == frame, "filter \(only.map(String.init) ?? "adaptive")")
        }
    }

    func testAPNGStructure() throws {
        let (width, height) = (9, 6)
        let video = try RGBVideo(width: width, height: height, frames: Self.pattern(width: width, height: height, frames: 4))
        let file = try PNGEncoder.encodeAnimated(video, fps: 16)
        let chunks = try TestPNG.chunks(file)
        XCTAssertEqual(chunks.map(\.type), ["IHDR", "acTL", "fcTL", "IDAT", "fcTL", "fdAT", "fcTL", "fdAT", "fcTL", "fdAT", "IEND"])
        let actl = chunks[1].data
        XCTAssertEqual(TestPNG.be32(actl, 0), 4)
        XCTAssertEqual(TestPNG.be32(actl, 4), 0)
        // Sequence numbers run 0, 1, 2, … across fcTL and fdAT chunks.
        let sequence = chunks.filter { $0.type == "fcTL" || $0.type == "fdAT" }.map { TestPNG.be32($0.data, 0) }
        XCTAssertEqual(sequence, Array(0..<7))
        for control in chunks.filter({ $0.type == "fcTL" }) {
            XCTAssertEqual(TestPNG.be32(control.data, 4), UInt32(width))
            XCTAssertEqual(TestPNG.be32(control.data, 8), UInt32(height))
            XCTAssertEqual(Array(control.data[20..<24]), [0, 1, 0, 16]) // delay 1/16 s
        }
        guard let zlib = ZlibLibrary.shared else { throw XCTSkip("zlib is not installed") }
        var frameData = [chunks[3].data]
        frameData += chunks.filter { $0.type == "fdAT" }.map { Array($0.data[4...]) }
        for (index, data) in frameData.enumerated() {
            let inflated = try zlib.uncompress(data, expectedSize: (width * 3 + 1) * height)
            XCTAssertTrue(try TestPNG.unfilter(inflated, width: width, height: height) == video.frames[index], "frame \(index)")
        }
    }

    // MARK: GIF

    func testGIFExactWhenFramesHaveFewColours() throws {
        // 256 distinct colours in random order: the palette is exact and the LZW table fills and clears
        // many times (120×90 random indices).
        let (width, height) = (120, 90)
        var state: UInt64 = 7
        var colours: [[UInt8]] = []
        for i in 0..<256 { colours.append([UInt8(i), UInt8((i * 37) & 0xFF), UInt8(255 - i)]) }
        var frames: [[UInt8]] = []
        for _ in 0..<2 {
            var frame: [UInt8] = []
            for _ in 0..<(width * height) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                frame += colours[Int(state >> 56)]
            }
            frames.append(frame)
        }
        let video = try RGBVideo(width: width, height: height, frames: frames)
        let gif = try TestGIF(GIFEncoder.encode(video, fps: 16, dithering: .ordered))
        XCTAssertEqual(gif.width, width)
        XCTAssertEqual(gif.height, height)
        XCTAssertTrue(gif.loops)
        XCTAssertEqual(gif.frames.count, frames.count)
        for (index, (decoded, original)) in zip(gif.frames, frames).enumerated() {
            XCTAssertTrue(decoded == original, "frame \(index) differs at byte \(firstDifference(decoded, original))")
        }
    }

    func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }

    func testGIFQuantizedFramesStayClose() throws {
        // Smooth gradients, like decoded video: far more than 256 colours, but no per-pixel noise.
        let (width, height) = (128, 96)
        let frames = (0..<2).map { t in
            (0..<(width * height)).flatMap { p -> [UInt8] in
                let (x, y) = (p % width, p / width)
                return [UInt8(x * 255 / (width - 1)), UInt8(y * 255 / (height - 1)), UInt8((x + 2 * y + 10 * t) % 256)]
            }
        }
        let video = try RGBVideo(width: width, height: height, frames: frames)
        var blockErrors: [GIFDithering: [Double]] = [:]
        for dithering in [GIFDithering.none, .ordered] {
            let gif = try TestGIF(GIFEncoder.encode(video, fps: 16, dithering: dithering))
            XCTAssertEqual(gif.frames.count, 2)
            for (decoded, original) in zip(gif.frames, frames) {
                var total = 0
                for (a, b) in zip(decoded, original) { total += abs(Int(a) - Int(b)) }
                let mean = Double(total) / Double(original.count)
                // Error of 4×4 block averages: what dithering is for (the eye averages neighbours).
                var blockTotal = 0.0
                var blocks = 0
                for by in stride(from: 0, to: height, by: 4) {
                    for bx in stride(from: 0, to: width, by: 4) {
                        for c in 0..<3 {
                            var difference = 0
                            for y in by..<(by + 4) {
                                for x in bx..<(bx + 4) {
                                    let i = (y * width + x) * 3 + c
                                    difference += Int(decoded[i]) - Int(original[i])
                                }
                            }
                            blockTotal += abs(Double(difference) / 16)
                            blocks += 1
                        }
                    }
                }
                let blockMean = blockTotal / Double(blocks)
                blockErrors[dithering, default: []].append(blockMean)
                XCTAssertLessThan(mean, dithering == .none ? 4 : 10, "\(dithering) mean abs error")
            }
        }
        print("GIF 4x4 block-mean errors: \(blockErrors)")
        let plain = blockErrors[.none] ?? []
        let dithered = blockErrors[.ordered] ?? []
        XCTAssertLessThan(dithered.reduce(0, +), plain.reduce(0, +), "ordered dither should track local averages better")
    }

    func testGIFDelaysTrackFrameRate() throws {
        let video = try RGBVideo(width: 2, height: 2, frames: Array(repeating: [UInt8](repeating: 9, count: 12), count: 16))
        let gif = try TestGIF(GIFEncoder.encode(video, fps: 16))
        XCTAssertEqual(gif.delays.reduce(0, +), 100, "16 frames at 16 fps last one second")
        XCTAssertEqual(Set(gif.delays), [6, 7])
    }

    // MARK: Y4M

    func testY4MKnownColours() throws {
        // Black, white, pure red, pure blue in 2×2 blocks → known limited-range BT.601 / BT.709 triples.
        let colours: [[UInt8]] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]
        let (width, height) = (8, 2)
        var frame = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 { frame[(y * width + x) * 3 + c] = colours[x / 2][c] }
            }
        }
        let video = try RGBVideo(width: width, height: height, frames: [frame, frame])
        let expected: [YCbCrMatrix: [[UInt8]]] = [
            .bt601: [[16, 128, 128], [235, 128, 128], [81, 90, 240], [41, 240, 110]],
            .bt709: [[16, 128, 128], [235, 128, 128], [63, 102, 240], [32, 240, 118]],
        ]
        for matrix in YCbCrMatrix.allCases {
            let file = try Y4MWriter.encode(video, fps: 16, matrix: matrix)
            guard let newline = file.firstIndex(of: 0x0A) else { return XCTFail("no header line") }
            let header = String(decoding: file[..<newline], as: UTF8.self)
            XCTAssertEqual(header, "YUV4MPEG2 W8 H2 F16:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED")
            let frameSize = 6 + 16 + 2 * 4
            XCTAssertEqual(file.count, newline + 1 + 2 * frameSize)
            let body = Array(file[(newline + 1)...])
            XCTAssertEqual(Array(body[0..<6]), Array("FRAME\n".utf8))
            let (yPlane, cb, cr) = (Array(body[6..<22]), Array(body[22..<26]), Array(body[26..<30]))
            for (block, triple) in (expected[matrix] ?? []).enumerated() {
                XCTAssertEqual(yPlane[block * 2], triple[0], "\(matrix) Y block \(block)")
                XCTAssertEqual(cb[block], triple[1], "\(matrix) Cb block \(block)")
                XCTAssertEqual(cr[block], triple[2], "\(matrix) Cr block \(block)")
            }
        }
    }

    func testY4MOddSizeChromaPlanes() throws {
        let video = try RGBVideo(width: 5, height: 3, frames: Self.pattern(width: 5, height: 3, frames: 1))
        let file = try Y4MWriter.encode(video, fps: 24)
        guard let newline = file.firstIndex(of: 0x0A) else { return XCTFail("no header line") }
        XCTAssertEqual(file.count - newline - 1, 6 + 15 + 2 * 3 * 2)
    }

    // MARK: tensor conversion

    func testTensorConversionMatchesDiffusers() throws {
        let source = try Fixtures.open("video/video.safetensors")
        let input = try source.tensor("input") // [1, 3, T, H, W]
        let (t, h, w) = (input.shape[2], input.shape[3], input.shape[4])
        for (name, mode) in [("nearest", PixelQuantization.nearest), ("truncate", .truncate)] {
            let expected = try source.tensor(name).integers().map { UInt8($0) } // [T, H, W, 3]
            let video = try RGBVideo(tensor: input, layout: .channelsFirst, quantization: mode)
            XCTAssertEqual((video.frameCount, video.height, video.width) == (t, h, w), true)
            XCTAssertEqual(video.frames.flatMap { $0 }, expected, name)
            // The same frames from a [3, T, H, W] view and from a channels-last [T, H, W, 3] tensor.
            let squeezed = try RGBVideo(tensor: try input.squeezed(0), layout: .channelsFirst, quantization: mode)
            XCTAssertEqual(squeezed, video)
            let last = try input.squeezed(0).permuted([1, 2, 3, 0])
            XCTAssertEqual(try RGBVideo(tensor: last, layout: .channelsLast, quantization: mode), video)
        }
    }

    // MARK: writer front end and errors

    func testWriterDispatchesOnExtension() throws {
        let directory = try temporaryDirectory()
        let video = try RGBVideo(width: 6, height: 4, frames: Self.pattern(width: 6, height: 4, frames: 3))
        let written = try VideoWriter.write(video, to: (directory as NSString).appendingPathComponent("clip.png"))
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent }, ["clip_00000.png", "clip_00001.png", "clip_00002.png"])
        for (path, frame) in zip(written, video.frames) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            try checkPNG(bytes, expected: frame, width: 6, height: 4)
        }
        for name in ["clip.apng", "clip.GIF", "clip.y4m"] {
            let path = (directory as NSString).appendingPathComponent(name)
            XCTAssertEqual(try VideoWriter.write(video, to: path), [path])
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), name)
        }
        XCTAssertEqual(VideoWriter.sequencePaths(for: "/a/b.png", count: 100_001).last, "/a/b_100000.png")
    }

    func testErrors() throws {
        XCTAssertThrowsError(try VideoFormat.from(path: "out.avi")) { error in
            guard case KinemaError.invalidArgument = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try RGBVideo(width: 2, height: 2, frames: [[1, 2, 3]])) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try RGBVideo(width: 2, height: 2, frames: []))
        XCTAssertThrowsError(try RGBVideo(width: 0, height: 2, frames: [[]]))
        XCTAssertThrowsError(try RGBVideo(tensor: try Tensor.zeros([4, 2, 2, 2]), layout: .channelsFirst)) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try RGBVideo(tensor: try Tensor.zeros([2, 3, 1, 2, 2]), layout: .channelsFirst))
        XCTAssertThrowsError(try RGBVideo(tensor: try Tensor.zeros([1, 2, 2, 3], dtype: .u8), layout: .channelsLast)) { error in
            guard case KinemaError.dtypeMismatch = error else { return XCTFail("\(error)") }
        }
        let video = try RGBVideo(width: 2, height: 2, frames: [[UInt8](repeating: 0, count: 12)])
        XCTAssertThrowsError(try GIFEncoder.encode(video, fps: 0))
        XCTAssertThrowsError(try PNGEncoder.encodeAnimated(video, fps: 0))
        XCTAssertThrowsError(try PNGEncoder.encode(rgb: [1, 2], width: 1, height: 1))
        XCTAssertThrowsError(try FFmpegWriter.locate(searchPath: [])) { error in
            guard case KinemaError.missingLibrary = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try FFmpegWriter.locate(explicit: "/nonexistent/ffmpeg", searchPath: [])) { error in
            guard case KinemaError.missingLibrary = error else { return XCTFail("\(error)") }
        }
        let directory = try temporaryDirectory()
        XCTAssertThrowsError(try VideoWriter.write(video, to: (directory as NSString).appendingPathComponent("missing/dir/x.gif"))) { error in
            guard case KinemaError.io = error else { return XCTFail("\(error)") }
        }
    }

    /// Writes an executable shell script standing in for ffmpeg.
    func fakeFFmpeg(_ body: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent("fake-ffmpeg")
        try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    func testFFmpegPipeProtocolWithFakeFFmpeg() throws {
        // The fake records its arguments and stdin; the last argument is the output path.
        let directory = try temporaryDirectory()
        let fake = try fakeFFmpeg(
            "for last; do :; done\nprintf '%s\\n' \"$@\" > \"$last.args\"\ncat > \"$last.raw\"\nprintf 'ok' > \"$last\"\n",
            in: directory)
        let path = (directory as NSString).appendingPathComponent("clip.mp4")
        let video = try RGBVideo(width: 33, height: 17, frames: Self.pattern(width: 33, height: 17, frames: 5))
        var options = VideoWriteOptions()
        options.ffmpegPath = fake
        options.crf = 23
        try VideoWriter.write(video, to: path, options: options)
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + ".raw")))
        XCTAssertTrue(raw == video.frames.flatMap { $0 }, "ffmpeg must receive the frames as raw rgb24")
        let arguments = try String(contentsOfFile: path + ".args", encoding: .utf8).split(separator: "\n").map(String.init)
        for expected in [["-s", "33x17"], ["-framerate", "16"], ["-pix_fmt", "rgb24"], ["-crf", "23"], ["-c:v", "libx264"]] {
            let found = zip(arguments, arguments.dropFirst()).contains { $0.0 == expected[0] && $0.1 == expected[1] }
            XCTAssertTrue(found, "missing \(expected) in \(arguments)")
        }
        XCTAssertEqual(arguments.last, path)
    }

    func testFFmpegFailuresAreReported() throws {
        let directory = try temporaryDirectory()
        let path = (directory as NSString).appendingPathComponent("clip.mp4")
        // Large enough (≈ 3 MB) to fill the pipe after ffmpeg is gone: the write must fail with EPIPE,
        // not kill the test process with SIGPIPE.
        let video = try RGBVideo(width: 640, height: 480, frames: Array(repeating: [UInt8](repeating: 3, count: 640 * 480 * 3), count: 4))
        let failing = try fakeFFmpeg("echo 'Unknown encoder libx264' >&2\nexit 3\n", in: directory)
        XCTAssertThrowsError(try FFmpegWriter.write(video, to: path, fps: 16, ffmpeg: failing)) { error in
            guard case KinemaError.io(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("status 3"), reason)
            XCTAssertTrue(reason.contains("Unknown encoder libx264"), reason)
        }
        XCTAssertThrowsError(try FFmpegWriter.write(video, to: path, fps: 16, crf: 99, ffmpeg: failing))
    }

    func testMP4WhenFFmpegIsInstalled() throws {
        guard let ffmpeg = try? FFmpegWriter.locate() else { throw XCTSkip("ffmpeg is not on PATH") }
        let directory = try temporaryDirectory()
        let path = (directory as NSString).appendingPathComponent("clip.mp4")
        let video = try RGBVideo(width: 33, height: 17, frames: Self.pattern(width: 33, height: 17, frames: 5))
        try FFmpegWriter.write(video, to: path, fps: 16, ffmpeg: ffmpeg)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(String(decoding: bytes[4..<8], as: UTF8.self), "ftyp")
    }
}
