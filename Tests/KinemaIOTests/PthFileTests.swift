import Foundation
import KinemaCore
import KinemaIO
import KinemaTestSupport
import XCTest

// The torch.save reader against files written by torch itself (scripts/goldens/umt5_goldens.py, fixtures
// under Tests/Fixtures/pth/): every dtype, non-contiguous and shared-storage views, nested dicts,
// wrappers; then hostile and corrupt archives, each of which must fail with a KinemaError that says why,
// and a seeded mutation fuzz over a good file.

final class PthFileTests: XCTestCase {
    private static let marker = "/tmp/kinema_pth_pwned"

    func testStateDictMatchesSafetensorsTwin() throws {
        let pth = try PthFile(path: Fixtures.path("pth/good_state_dict.pth"))
        let twin = try Fixtures.open("pth/good_state_dict.expected.safetensors")
        XCTAssertEqual(pth.names, twin.names, "the {'state_dict': …} wrapper is removed and nested dicts flattened")
        for name in twin.names {
            let expected = try twin.tensor(name)
            let actual = try pth.tensor(name)
            XCTAssertEqual(actual.dtype, expected.dtype, name)
            XCTAssertEqual(actual.shape, expected.shape, name)
            XCTAssertEqual(pth.info(name), TensorInfo(name: name, dtype: expected.dtype, shape: expected.shape))
            if expected.dtype.isFloatingPoint {
                XCTAssertEqual(try actual.floats().map(\.bitPattern), try expected.floats().map(\.bitPattern), name)
            } else {
                XCTAssertEqual(try actual.integers(), try expected.integers(), name)
            }
        }
    }

    func testViewsKeepTorchStridesAndShareStorage() throws {
        let pth = try PthFile(path: Fixtures.path("pth/good_state_dict.pth"))
        let transposed = try pth.tensor("transposed")
        XCTAssertEqual(transposed.shape, [5, 4])
        XCTAssertEqual(transposed.strides, [1, 5], "a saved transposed view stays a view")
        XCTAssertFalse(transposed.isContiguous)
        let a = try pth.tensor("shared.a")
        let b = try pth.tensor("shared.b")
        XCTAssertEqual(a.offset, 2)
        XCTAssertEqual(b.offset, 5)
        XCTAssertEqual(b.strides, [3])
        XCTAssertEqual(a.storage.base, b.storage.base, "views of one storage share the mapped bytes")
        XCTAssertEqual(try pth.tensor("scalar").shape, [])
        XCTAssertEqual(Int(bitPattern: a.storage.base) % 64, 0, "torch aligns storages to 64 bytes; mapped zero-copy")
    }

    func testPlainModelWrapperAndZip64() throws {
        let reference = try PthFile(path: Fixtures.path("pth/good_state_dict.pth"))
        for file in ["good_plain.pth", "good_model_wrapper.pth", "good_protocol4.pth", "good_zip64.pth"] {
            let source = try Checkpoints.open(Fixtures.path("pth/\(file)"))
            XCTAssertTrue(source is PthFile, file)
            XCTAssertEqual(source.names, ["bf16", "f32", "transposed"], file)
            XCTAssertEqual(try source.tensor("bf16").dtype, .bf16)
            for name in source.names {
                XCTAssertEqual(try source.tensor(name).floats(), try reference.tensor(name).floats(), "\(file) \(name)")
            }
        }
    }

    func testCheckpointsDispatch() throws {
        XCTAssertTrue(try Checkpoints.open(Fixtures.path("pth/good_state_dict.expected.safetensors")) is SafeTensorsFile)
        XCTAssertTrue(try Checkpoints.open(Fixtures.path("umt5/transformers")) is SafeTensorsFile)
        XCTAssertThrowsError(try Checkpoints.open(Fixtures.path("pth/no-such-file.pth")))
    }

    /// Every hostile or corrupt file named in pth.json fails with a KinemaError whose text contains the
    /// expected fragment — and nothing in them ran.
    func testHostileFilesAreRejected() throws {
        try? FileManager.default.removeItem(atPath: Self.marker)
        let manifest = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pth/pth.json")))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: manifest) as? [String: Any])
        let bad = try XCTUnwrap(json["bad"] as? [String: String])
        XCTAssertGreaterThanOrEqual(bad.count, 25)
        for (file, fragment) in bad.sorted(by: { $0.key < $1.key }) {
            let path = Fixtures.path("pth/\(file)")
            do {
                let source = try Checkpoints.open(path)
                for name in source.names { _ = try source.tensor(name).floats() }
                XCTFail("\(file): expected an error, opened with \(source.names)")
            } catch let error as KinemaError {
                let text = error.description
                XCTAssertTrue(text.lowercased().contains(fragment.lowercased()), "\(file): '\(fragment)' not in: \(text)")
                XCTAssertTrue(text.contains(path) || text.contains(file), "\(file): message does not name the file: \(text)")
            } catch {
                XCTFail("\(file): not a KinemaError: \(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.marker), "a hostile pickle was executed")
    }

    func testRefusedGlobalIsNamed() throws {
        for (file, global) in [("bad_os_system.pth", "posix.system"), ("bad_subprocess_popen.pth", "subprocess.Popen"),
                               ("bad_builtins_eval.pth", "__builtin__.eval"), ("bad_stack_global.pth", "builtins.eval")] {
            XCTAssertThrowsError(try PthFile(path: Fixtures.path("pth/\(file)"))) { error in
                XCTAssertTrue("\(error)".contains("refusing global '\(global)'"), "\(file): \(error)")
            }
        }
    }

    /// A few hundred seeded byte mutations of a good file (inside the pickle, the zip records and the
    /// storages): each must open or fail with a KinemaError, never crash or hang.
    func testMutationFuzz() throws {
        // Half the mutations land in the pickle (the first record), where structure is densest.
        try fuzz("good_state_dict.pth", iterations: 300, focus: 0..<1200, seed: 0x5EED_0F_7A11)
    }

    /// The zip64 file, mutating its tail (zip64 end record, locator, central directory with zip64 extras).
    func testMutationFuzzZip64Directory() throws {
        let size = try FileManager.default.attributesOfItem(atPath: Fixtures.path("pth/good_zip64.pth"))[.size] as? Int ?? 0
        try fuzz("good_zip64.pth", iterations: 150, focus: max(0, size - 700)..<size, seed: 0xC0FF_EE64)
    }

    /// Seeded byte mutations of a good file: each must open or fail with a KinemaError, never crash or hang.
    private func fuzz(_ file: String, iterations: Int, focus: Range<Int>, seed: UInt64) throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pth/\(file)"))))
        let directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("kinema-pth-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var state = seed
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        let focus = focus.clamped(to: 0..<original.count)
        var opened = 0
        var rejected = 0
        for iteration in 0..<iterations {
            var bytes = original
            let edits = 1 + next() % 4
            for _ in 0..<edits where !bytes.isEmpty {
                let index = (iteration % 2 == 0 ? focus.lowerBound + next() % max(1, focus.count) : next() % bytes.count) % bytes.count
                switch next() % 4 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: next())
                case 1: bytes[index] ^= UInt8(1 << (next() % 8))
                case 2: bytes[index] = [0x00, 0xFF, 0x7F, 0x80][next() % 4]
                default: bytes.removeSubrange(index..<min(bytes.count, index + 1 + next() % 16))
                }
            }
            if iteration % 25 == 24 { bytes = Array(bytes.prefix(next() % max(1, bytes.count))) }
            let path = (directory as NSString).appendingPathComponent("m\(iteration).pth")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let source = try PthFile(path: path)
                for name in source.names { _ = try source.tensor(name).floats() }
                opened += 1
            } catch is KinemaError {
                rejected += 1
            } catch {
                XCTFail("\(file) mutation \(iteration): not a KinemaError: \(error)")
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        XCTAssertEqual(opened + rejected, iterations)
        XCTAssertGreaterThan(rejected, iterations / 3, "\(file): most mutations should be caught")
    }
}
