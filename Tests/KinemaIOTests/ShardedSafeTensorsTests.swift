import Foundation
import KinemaCore
import KinemaIO
import XCTest

final class ShardedSafeTensorsTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory("kinema-shards") }
    override func tearDown() { directory = nil }

    private let first = "model-00001-of-00002.safetensors"
    private let second = "model-00002-of-00002.safetensors"

    /// Two shards: a, b in the first; c in the second.
    private func writeShards() throws {
        try SafeTensors.write(
            ["a": try Tensor([1, 2, 3, 4], shape: [2, 2]), "b": try Tensor(integers: [5, 6], shape: [2], dtype: .i64)],
            to: directory.file(first))
        try SafeTensors.write(["c": try Tensor([7, 8, 9], shape: [3], dtype: .bf16)], to: directory.file(second))
    }

    @discardableResult
    private func writeIndex(_ map: [String: String], metadata: String = #"{"total_size": 48}"#, name: String = "model.safetensors.index.json") throws -> String {
        let entries = map.keys.sorted().map { "\"\($0)\": \"\(map[$0] ?? "")\"" }.joined(separator: ", ")
        return try directory.write(text: "{\"metadata\": \(metadata), \"weight_map\": {\(entries)}}", to: name)
    }

    private func assertIndexRejected(
        _ indexPath: String, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try ShardedSafeTensors(indexPath: indexPath), file: file, line: line) { error in
            guard case KinemaError.badFile? = error as? KinemaError else {
                return XCTFail("expected badFile, got \(error)", file: file, line: line)
            }
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "\"\(fragment)\" missing from: \(error)", file: file, line: line)
            }
        }
    }

    func testIndexReadsAcrossShards() throws {
        try writeShards()
        let index = try writeIndex(["a": first, "b": first, "c": second])
        let sharded = try ShardedSafeTensors(indexPath: index)
        XCTAssertEqual(sharded.names, ["a", "b", "c"])
        XCTAssertEqual(sharded.origin, index)
        XCTAssertEqual(sharded.metadata["total_size"], "48")
        XCTAssertEqual(sharded.shards.map(\.path), [directory.file(first), directory.file(second)])
        XCTAssertEqual(sharded.info("c"), TensorInfo(name: "c", dtype: .bf16, shape: [3]))
        XCTAssertEqual(try sharded.tensor("a").floats(), [1, 2, 3, 4])
        XCTAssertEqual(try sharded.tensor("b").integers(), [5, 6])
        XCTAssertEqual(try sharded.tensor("c").floats(), [7, 8, 9])
        XCTAssertEqual(sharded.shard(of: "c")?.path, directory.file(second))
        XCTAssertThrowsError(try sharded.tensor("d"))

        // The same checkpoint through the generic entry point, by index path and by directory.
        XCTAssertEqual(try SafeTensors.open(index).names, ["a", "b", "c"])
        let viaDirectory = try SafeTensors.open(directory.path)
        XCTAssertTrue(viaDirectory is ShardedSafeTensors)
        XCTAssertEqual(try viaDirectory.tensor("c").floats(), [7, 8, 9])
    }

    func testMissingShard() throws {
        try writeShards()
        let index = try writeIndex(["a": first, "b": first, "c": "model-00003-of-00003.safetensors"])
        assertIndexRejected(index, mentions: [index, "model-00003-of-00003.safetensors", "does not exist"])
    }

    func testNameInMapButNotInShard() throws {
        try writeShards()
        let index = try writeIndex(["a": first, "b": first, "c": second, "ghost": second])
        assertIndexRejected(index, mentions: [index, "\"ghost\"", "no such tensor"])
        let misplaced = try writeIndex(["a": first, "b": second, "c": second], name: "misplaced.safetensors.index.json")
        assertIndexRejected(misplaced, mentions: ["\"b\"", second])
    }

    func testNameInShardButNotInMap() throws {
        try writeShards()
        let index = try writeIndex(["a": first, "c": second])
        assertIndexRejected(index, mentions: [index, "\"b\"", "not mapped"])
    }

    func testMalformedIndexes() throws {
        try writeShards()
        assertIndexRejected(try directory.write(text: "[1]", to: "array.index.json"), mentions: ["not an object"])
        assertIndexRejected(try directory.write(text: #"{"metadata": {}}"#, to: "no-map.index.json"), mentions: ["no \"weight_map\""])
        assertIndexRejected(try directory.write(text: #"{"weight_map": {"a": 3}}"#, to: "number.index.json"), mentions: ["weight_map[\"a\"]"])
        assertIndexRejected(
            try directory.write(text: "{\"weight_map\": {\"a\": \"\(first)\", \"a\": \"\(second)\"}}", to: "dup.index.json"),
            mentions: ["duplicate key \"a\""])
        assertIndexRejected(try writeIndex(["a": "../elsewhere.safetensors"], name: "escape.index.json"), mentions: ["relative path inside"])
        assertIndexRejected(try writeIndex(["a": "/etc/passwd"], name: "absolute.index.json"), mentions: ["relative path inside"])
        assertIndexRejected(try writeIndex(["a": first], metadata: "7", name: "bad-metadata.index.json"), mentions: ["\"metadata\" must be an object"])
    }

    func testDirectoryWithOneFile() throws {
        try SafeTensors.write(["x": try Tensor([1], shape: [1])], to: directory.file("only.safetensors"))
        let source = try SafeTensors.open(directory.path)
        XCTAssertTrue(source is SafeTensorsFile)
        XCTAssertEqual(source.names, ["x"])
    }

    func testDirectoryOfShardsWithoutIndexIsMerged() throws {
        try writeShards()
        let merged = try SafeTensors.open(directory.path)
        XCTAssertEqual(merged.names, ["a", "b", "c"])
        XCTAssertEqual(merged.origin, directory.path)
        XCTAssertEqual(try merged.tensor("b").integers(), [5, 6])
    }

    func testDirectoryShardsWithDuplicateNames() throws {
        try writeShards()
        try SafeTensors.write(["c": try Tensor([0], shape: [1])], to: directory.file("extra.safetensors"))
        XCTAssertThrowsError(try SafeTensors.open(directory.path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("\"c\"") && text.contains("extra.safetensors") && text.contains(second), text)
        }
    }

    func testDirectoryProblems() throws {
        XCTAssertThrowsError(try SafeTensors.open(directory.path)) { error in
            XCTAssertTrue("\(error)".contains("no .safetensors file"), "\(error)")
        }
        try writeShards()
        try writeIndex(["a": first, "b": first, "c": second], name: "one.safetensors.index.json")
        try writeIndex(["a": first, "b": first, "c": second], name: "two.safetensors.index.json")
        XCTAssertThrowsError(try SafeTensors.open(directory.path)) { error in
            XCTAssertTrue("\(error)".contains("several safetensors indexes"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensors.open(directory.file("nothing-here"))) { error in
            guard case KinemaError.io? = error as? KinemaError else { return XCTFail("\(error)") }
        }
    }
}
