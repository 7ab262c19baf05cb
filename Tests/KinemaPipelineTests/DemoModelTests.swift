import Foundation
import KinemaCore
import KinemaIO
import KinemaPipeline
import KinemaTestSupport
import XCTest

// Finding the bundled demo model, and the demo tokenizer (tools/demo-model/tokenizer.py) read by Kinema.

final class DemoModelTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "kinema-demo-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func makeDemoFolder(_ path: String, student: Bool = true) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        if student { try FileManager.default.createDirectory(atPath: path + "/distill", withIntermediateDirectories: true) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path + "/model_index.json", contents: Data("{}".utf8)))
        XCTAssertTrue(FileManager.default.createFile(atPath: path + "/kinema_defaults.json", contents: Data("{}".utf8)))
    }

    func testDefaultVariantIsTheStudentOnlyWhereTheBundleHasOne() throws {
        try makeDemoFolder(scratch + "/with/kinema-demo")
        try makeDemoFolder(scratch + "/without/kinema-demo", student: false)
        let env = RuntimeOptions(environment: [:])
        let with = try DemoModel.locate(executable: nil, currentDirectory: scratch + "/with", environment: env)
        XCTAssertTrue(with.hasStudent)
        XCTAssertEqual(with.defaultVariant, .student)
        let without = try DemoModel.locate(executable: nil, currentDirectory: scratch + "/without", environment: env)
        XCTAssertFalse(without.hasStudent)
        XCTAssertEqual(without.defaultVariant, .base)
        // A folder with model_index.json alone (any diffusers pipeline) is not taken for the demo model.
        try FileManager.default.createDirectory(atPath: scratch + "/plain/kinema-demo", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch + "/plain/kinema-demo/model_index.json", contents: Data("{}".utf8)))
        XCTAssertThrowsError(try DemoModel.locate(executable: nil, currentDirectory: scratch + "/plain", environment: env))
    }

    func testFoundInTheSourceTreeAboveTheBuildFolder() throws {
        // A checkout: <root>/models/kinema-demo and the binary in <root>/.build/x86_64-unknown-linux-gnu/release/.
        try makeDemoFolder(scratch + "/models/kinema-demo")
        let binDir = scratch + "/.build/x86_64-unknown-linux-gnu/release"
        try FileManager.default.createDirectory(atPath: binDir, withIntermediateDirectories: true)
        let found = try DemoModel.locate(
            executable: binDir + "/kinema", currentDirectory: "/", environment: RuntimeOptions(environment: [:]))
        XCTAssertEqual(found.folder, scratch + "/models/kinema-demo")
        XCTAssertEqual(found.studentTransformer, scratch + "/models/kinema-demo/distill")
        XCTAssertEqual(found.studentConfig, scratch + "/models/kinema-demo/distill/lightx2v_config.json")
    }

    func testFoundBesideACopiedBinaryAndFromTheCurrentDirectory() throws {
        try makeDemoFolder(scratch + "/bin/kinema-demo")
        let beside = try DemoModel.locate(
            executable: scratch + "/bin/kinema", currentDirectory: "/", environment: RuntimeOptions(environment: [:]))
        XCTAssertEqual(beside.folder, scratch + "/bin/kinema-demo")
        try makeDemoFolder(scratch + "/work/models/kinema-demo")
        let fromDirectory = try DemoModel.locate(
            executable: nil, currentDirectory: scratch + "/work/sub", environment: RuntimeOptions(environment: [:]))
        XCTAssertEqual(fromDirectory.folder, scratch + "/work/models/kinema-demo")
    }

    func testEnvironmentOverrideWinsAndIsChecked() throws {
        try makeDemoFolder(scratch + "/elsewhere")
        try makeDemoFolder(scratch + "/models/kinema-demo")
        let env = RuntimeOptions(environment: ["KINEMA_DEMO_MODEL": scratch + "/elsewhere"])
        XCTAssertEqual(try DemoModel.locate(executable: nil, currentDirectory: scratch, environment: env).folder, scratch + "/elsewhere")
        let bad = RuntimeOptions(environment: ["KINEMA_DEMO_MODEL": scratch + "/missing"])
        XCTAssertThrowsError(try DemoModel.locate(executable: nil, currentDirectory: scratch, environment: bad)) { error in
            XCTAssertTrue("\(error)".contains("KINEMA_DEMO_MODEL"), "\(error)")
        }
    }

    func testMissingModelErrorListsWhereItLooked() throws {
        XCTAssertThrowsError(
            try DemoModel.locate(executable: scratch + "/bin/kinema", currentDirectory: scratch, environment: RuntimeOptions(environment: [:]))
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(scratch + "/bin/kinema-demo"), text)
            XCTAssertTrue(text.contains("--model"), text)
        }
    }

    /// Kinema's tokenizer.json reader gives the ids `tokenizers` gives for the demo tokenizer.
    func testDemoTokenizerMatchesTokenizers() throws {
        let tokenizer = try UnigramTokenizer.load(Fixtures.path("demo_world/tokenizer/tokenizer.json"))
        let data = try XCTUnwrap(FileManager.default.contents(atPath: Fixtures.path("demo_world/tokenizer/cases.json")))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let strings = try XCTUnwrap(json["strings"] as? [String])
        let ids = try XCTUnwrap(json["ids"] as? [[Int]])
        XCTAssertGreaterThan(strings.count, 50)
        for (text, expected) in zip(strings, ids) {
            XCTAssertEqual(try tokenizer.encode(text), expected, text)
        }
    }
}
