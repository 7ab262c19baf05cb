import Foundation
import KinemaCPU
import KinemaCore
import KinemaIO
import KinemaPipeline
import KinemaTestSupport
import XCTest

// `kinema generate --image … [--last-image …]` through the same API calls the command makes (ImageInputs.prepare
// before loading, TextToVideoPipeline.load, an image session, decode, VideoWriter) on the tiny I2V / FLF2V
// fixtures, from the PNG and the JPEG input files, writing GIFs; and the request errors, all raised before
// any weights are loaded.

final class ImageToVideoGenerateTests: XCTestCase {
    let fixtures = Fixtures.path("wan_i2v")

    /// What `kinema generate` does after parsing its options; returns the session (finished) and the files written.
    func generate(
        model: String, image: String?, lastImage: String?, settings base: GenerationSettings, latents: Tensor? = nil, output: String
    ) throws -> (DenoisingSession, [String]) {
        let folder = try WanModelFolder.locate(model)
        var settings = base
        let images = try ImageInputs.prepare(folder: folder, imagePath: image, lastImagePath: lastImage, settings: &settings)
        let pipeline = try TextToVideoPipeline.load(folder, backend: CPUBackend.shared, precision: .f32)
        let session = try images.map { try pipeline.session(settings, images: $0, latents: latents) } ?? pipeline.session(settings, latents: latents)
        while !session.isFinished { try session.step() }
        var options = VideoWriteOptions()
        options.fps = 8
        let written = try VideoWriter.write(try session.decode(), layout: .channelsFirst, to: output, options: options)
        return (session, written)
    }

    func temporaryGIF(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "kinema-i2v-\(ProcessInfo.processInfo.processIdentifier)-\(name).gif"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func assertGIF(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path), file: file, line: line)
        XCTAssertEqual(String(decoding: data.prefix(6), as: UTF8.self), "GIF89a", file: file, line: line)
        XCTAssertGreaterThan(data.count, 100, file: file, line: line)
    }

    /// PNG → I2V with the golden case's settings and noise: the 50×34 image gives a 48×32 video at the 32·48 area,
    /// and the final latents match diffusers'.
    func testPNGImageToVideoWritesGIFAndMatchesGolden() throws {
        let cases = try ImageToVideoGoldenTests.cases()
        let c = try XCTUnwrap(cases["i2v"])
        var settings = try ImageToVideoGoldenTests.settings(c)
        // The request gives the area (as --height 32 --width 48 would); the size comes from the image.
        (settings.height, settings.width) = (48, 32)
        let io = try Fixtures.open("wan_i2v/io.safetensors")
        let output = temporaryGIF("png")
        let (session, written) = try generate(
            model: fixtures + "/i2v", image: fixtures + "/inputs/first.png", lastImage: nil, settings: settings,
            latents: try io.tensor("i2v.latents_in"), output: output)
        XCTAssertEqual(written, [output])
        try assertGIF(output)
        assertClose(try session.latents, try io.tensor("i2v.latents_out"), relL2: Tolerances.goldenF32RelL2, "PNG I2V final latents")
    }

    /// JPEG first frame + PNG last frame → FLF2V, seeded noise: a 16×32 video (the JPEG is portrait), written as GIF.
    func testJPEGFirstLastFrameWritesGIF() throws {
        var settings = GenerationSettings(prompt: "a cat turns its head")
        (settings.frames, settings.height, settings.width, settings.guidance) = (5, 32, 32, 3)
        settings.sampler = SamplerConfiguration(kind: .euler, steps: 2, shift: 3)
        let output = temporaryGIF("jpeg")
        let (session, written) = try generate(
            model: fixtures + "/flf2v", image: fixtures + "/inputs/last.jpg", lastImage: fixtures + "/inputs/first.png",
            settings: settings, output: output)
        XCTAssertEqual(written, [output])
        try assertGIF(output)
        XCTAssertEqual(try session.latents.shape, [1, 16, 2, 4, 2])
        XCTAssertTrue(try session.latents.floats().allSatisfy(\.isFinite))
    }

    func testRequestErrorsComeBeforeLoading() throws {
        var settings = GenerationSettings(prompt: "x")
        (settings.frames, settings.height, settings.width) = (5, 32, 32)
        let png = fixtures + "/inputs/first.png"
        func expectError(_ model: String, _ image: String?, _ last: String?, _ fragment: String, line: UInt = #line) {
            var s = settings
            XCTAssertThrowsError(
                try ImageInputs.prepare(folder: try WanModelFolder.locate(model), imagePath: image, lastImagePath: last, settings: &s), line: line
            ) { XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line) }
        }
        expectError(Fixtures.path("wan_pipeline/diffusers"), png, nil, "text-to-video model")
        expectError(fixtures + "/i2v", nil, nil, "--image")
        expectError(fixtures + "/i2v", png, png, "emb_pos")
        expectError(fixtures + "/i2v", nil, png, "--last-image needs --image")
        expectError(fixtures + "/flf2v", png, nil, "--last-image")
        expectError(fixtures + "/i2v", fixtures + "/cases.json", nil, "not a PNG or JPEG")
        expectError(fixtures + "/i2v", fixtures + "/missing.png", nil, "missing.png")
        // An original-layout I2V folder without its CLIP .pth.
        expectError(try ImageToVideoGoldenTests.folderWithoutCLIP(self), png, nil, WanModelFolder.originalCLIPFile)
        // A target area that cannot hold the image's aspect ratio.
        var tiny = settings
        (tiny.height, tiny.width) = (16, 16)
        XCTAssertThrowsError(
            try ImageInputs.prepare(
                folder: try WanModelFolder.locate(fixtures + "/i2v"), imagePath: png, lastImagePath: nil, settings: &tiny))

        // Text-to-video requests pass through unchanged.
        var t2v = settings
        XCTAssertNil(try ImageInputs.prepare(
            folder: try WanModelFolder.locate(Fixtures.path("wan_pipeline/diffusers")), imagePath: nil, lastImagePath: nil, settings: &t2v))
        XCTAssertEqual(t2v, settings)
    }

    /// `kinema forward --component vae_encoder`: `sample` (a [-1, 1] video) → normalized `latents`, the image half
    /// of diffusers' I2V condition ((mode − latents_mean) · (1 / latents_std) of [image, zeros…]).
    func testVAEEncoderComponentGivesNormalizedLatents() throws {
        let io = try Fixtures.open("wan_i2v/io.safetensors")
        let image = try ImageToVideoGoldenTests.image(io, "i2v.image_resized")
        let condition = try io.tensor("i2v.condition")  // [1, 20, 3, 4, 6]
        let frames = 9
        let plane = image.width * image.height
        let pixels = try image.tensor().floats()
        var video = [Float](repeating: 0, count: 3 * frames * plane)
        for c in 0..<3 { for i in 0..<plane { video[c * frames * plane + i] = pixels[c * plane + i] } }
        let directory = NSTemporaryDirectory() + "kinema-vae-encoder-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SafeTensors.write(["sample": try Tensor(video, shape: [1, 3, frames, image.height, image.width])], to: directory + "/in.safetensors")
        let report = try ComponentForward.run(
            ComponentForwardRequest(
                modelPath: fixtures + "/i2v", component: .vaeEncoder, inputsPath: directory + "/in.safetensors",
                outputPath: directory + "/out.safetensors", precision: .f32, device: .cpu))
        XCTAssertEqual(report.outputs.map(\.name), ["latents"])
        let expected = try CPUBackend.shared.contiguous(try condition.narrowed(axis: 1, start: 4, length: 16))
        assertClose(try SafeTensors.open(directory + "/out.safetensors").tensor("latents"), expected, relL2: Tolerances.goldenF32RelL2, "vae_encoder latents")
    }
}
