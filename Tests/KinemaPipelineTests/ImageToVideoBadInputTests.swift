import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaPipeline
import KinemaTestSupport
import XCTest

// Bad image-to-video requests (sizes, frame counts, model files): each must be a KinemaError raised by
// ImageInputs.prepare, before any weights are loaded, and never an arithmetic trap or a late failure.

final class ImageToVideoBadInputTests: XCTestCase {
    let fixtures = Fixtures.path("wan_i2v")
    var png: String { fixtures + "/inputs/first.png" }

    func expectError(
        _ model: String, _ fragment: String, last: String? = nil, line: UInt = #line, edit: (inout GenerationSettings) -> Void = { _ in }
    ) {
        var settings = GenerationSettings(prompt: "x")
        (settings.frames, settings.height, settings.width) = (5, 32, 32)
        edit(&settings)
        XCTAssertThrowsError(
            try ImageInputs.prepare(folder: try WanModelFolder.locate(model), imagePath: png, lastImagePath: last, settings: &settings), line: line
        ) { XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line) }
    }

    /// --height × --width is multiplied into the target area: huge values were an Int overflow trap.
    func testHugeSizesAndFrameCountsAreErrors() {
        expectError(fixtures + "/i2v", "to \(GenerationSettings.maximumSide)") { ($0.height, $0.width) = (1 << 32, 1 << 32) }
        var settings = GenerationSettings(prompt: "x")
        settings.frames = (1 << 40) + 1
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("at most"), "\($0)") }
        (settings.frames, settings.height) = (81, 1 << 40)
        XCTAssertThrowsError(try settings.validate())
    }

    /// A 16:16000-like aspect ratio gives a sliver video whose long side is far beyond any usable size.
    func testExtremeAspectRatioNamesTheAspectRatio() {
        XCTAssertThrowsError(try WanVideoSize.target(imageWidth: 16, imageHeight: 16_000, area: 480 * 832)) {
            XCTAssertTrue("\($0)".contains("aspect ratio is too extreme"), "\($0)")
        }
        XCTAssertThrowsError(try WanVideoSize.target(imageWidth: 16, imageHeight: 16, area: 1 << 40))
    }

    /// FLF2V with one frame used to pass prepare and fail only after the model had been loaded.
    func testFirstLastFrameNeedsFiveFramesBeforeLoading() {
        expectError(fixtures + "/flf2v", "at least 5 frames", last: png) { $0.frames = 1 }
    }

    /// A copy of the I2V fixture folder (symbolic links) whose `replaced` files have the given contents.
    func folder(replacing replaced: [String: String]) throws -> String {
        let source = (fixtures + "/i2v" as NSString).resolvingSymlinksInPath
        let directory = NSTemporaryDirectory() + "kinema-i2v-bad-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let manager = FileManager.default
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for entry in try manager.contentsOfDirectory(atPath: source) {
            let edited = replaced.keys.filter { $0.hasPrefix(entry + "/") }
            guard !edited.isEmpty else {
                try manager.createSymbolicLink(atPath: directory + "/" + entry, withDestinationPath: source + "/" + entry)
                continue
            }
            // A folder holding a replaced file: its other files as links, the replaced one written.
            try manager.createDirectory(atPath: directory + "/" + entry, withIntermediateDirectories: true)
            for name in try manager.contentsOfDirectory(atPath: source + "/" + entry) {
                let relative = entry + "/" + name
                if let contents = replaced[relative] {
                    try Data(contents.utf8).write(to: URL(fileURLWithPath: directory + "/" + relative))
                } else {
                    try manager.createSymbolicLink(atPath: directory + "/" + relative, withDestinationPath: source + "/" + relative)
                }
            }
        }
        return directory
    }

    func processorJSON(size: Int = 56, extra: String = "") -> String {
        """
        {"crop_size": {"height": \(size), "width": \(size)}, "size": {"shortest_edge": \(size)}, "resample": 3\(extra)}
        """
    }

    /// Malformed or unsupported CLIP JSON used to surface only in TextToVideoPipeline.load, after the DiT,
    /// umT5 and the VAE had been read.
    func testBadCLIPFilesAreReportedBeforeLoading() throws {
        let processor = "image_processor/preprocessor_config.json"
        expectError(try folder(replacing: ["image_encoder/config.json": "{ not json"]), "not a JSON object")
        expectError(try folder(replacing: [processor: "[1, 2]"]), "not a JSON object")
        expectError(try folder(replacing: [processor: processorJSON(size: 224)]), "image_size is 56")
        expectError(try folder(replacing: [processor: processorJSON(extra: #", "do_normalize": false"#)]), "do_normalize")
        expectError(try folder(replacing: [processor: processorJSON(extra: #", "rescale_factor": 1.0"#)]), "rescale_factor")
        // The same folder with a well-formed copy of the file passes.
        var settings = GenerationSettings(prompt: "x")
        (settings.frames, settings.height, settings.width) = (5, 32, 32)
        let good = try folder(replacing: [processor: processorJSON()])
        XCTAssertNotNil(try ImageInputs.prepare(folder: try WanModelFolder.locate(good), imagePath: png, lastImagePath: nil, settings: &settings))
    }

    /// A size that would overflow 1 + (image_size / patch_size)² is refused when the config is read.
    func testOversizedCLIPConfigIsAnError() {
        let json = #"{"model_type": "clip_vision_model", "image_size": 4000000000, "patch_size": 1, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2}"#
        XCTAssertThrowsError(try CLIPVisionConfig(json: Data(json.utf8), origin: "config.json")) {
            XCTAssertTrue("\($0)".contains("image_size at most"), "\($0)")
        }
    }

    /// CLIP's shortest-edge resize of the thinnest frame WanVideoSize allows (16×8192 → 224×114688 before the
    /// center crop) was refused by the resizer's 32768-per-side limit, after the model had been loaded.
    func testCLIPPreprocessesAThinFrame() throws {
        let (width, height) = (16, GenerationSettings.maximumSide)
        let pixels = (0..<(width * height * 3)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let values = try CLIPImagePreprocessing.pixelValues(from: RGBImage(width: width, height: height, pixels: pixels), size: 224)
        XCTAssertEqual(values.shape, [1, 3, 224, 224])
        XCTAssertTrue(try values.floats().allSatisfy(\.isFinite))
    }

    /// Resampling only a crop gives the bytes of the full resize, cropped (both pass orders, shrink and grow,
    /// an unchanged side).
    func testCroppedResizeEqualsResizeThenCrop() throws {
        var generator = SplitMix64(seed: 7)
        let image = RGBImage(width: 23, height: 17, pixels: (0..<(23 * 17 * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        for (width, height) in [(40, 9), (11, 30), (23, 40), (9, 17), (12, 8)] {
            let full = try image.resized(width: width, height: height)
            let (columns, rows) = ((width / 3)..<(width - 1), 1..<(height / 2 + 1))
            let crop = try image.resized(width: width, height: height, columns: columns, rows: rows)
            XCTAssertEqual(crop.width, columns.count)
            XCTAssertEqual(crop.height, rows.count)
            var expected: [UInt8] = []
            for y in rows { expected += full.pixels[((y * width + columns.lowerBound) * 3)..<((y * width + columns.upperBound) * 3)] }
            XCTAssertEqual(crop.pixels, expected, "\(width)×\(height)")
        }
        XCTAssertThrowsError(try image.resized(width: 10, height: 10, columns: 5..<11, rows: 0..<10))
    }

    /// LightX2V seeds above 1e9 (common) were rejected as "expected an integer".
    func testLargeSeedInConfigIsAccepted() throws {
        let config = try LightX2VConfig.parse(Data(#"{"seed": 3000000000}"#.utf8), origin: "kinema_defaults.json")
        XCTAssertEqual(config.seed, 3_000_000_000)
    }
}
