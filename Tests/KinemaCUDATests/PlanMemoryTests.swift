import Foundation
import KinemaCore
import XCTest

@testable import KinemaCUDA

// The on-disk stores behind the kernel cache and the remembered cuDNN plan choices: what is written reads
// back under the same key only; another key, environment, a damaged or truncated file reads as a miss.
final class PlanMemoryTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "kinema-plan-memory-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func testKeyedFileRoundTripAndMisses() throws {
        let store = KeyedFileCache(folder: folder, suffix: ".test")
        XCTAssertNil(store.read(key: "a"))
        store.write(key: "a", payload: [1, 2, 3])
        XCTAssertEqual(store.read(key: "a"), [1, 2, 3])
        XCTAssertNil(store.read(key: "b"))
        store.write(key: "a", payload: [9])
        XCTAssertEqual(store.read(key: "a"), [9], "a second write replaces the first")
        // Truncated inside the stored key, then garbage of the right length with another key: misses.
        let path = try XCTUnwrap(store.path(key: "a"))
        try Data([1, 0, 0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: path))
        XCTAssertNil(store.read(key: "a"))
        try Data([1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "z"), 7]).write(to: URL(fileURLWithPath: path))
        XCTAssertNil(store.read(key: "a"))
        // A length field far past the file's end.
        try Data([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, UInt8(ascii: "a")]).write(to: URL(fileURLWithPath: path))
        XCTAssertNil(store.read(key: "a"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.contains(".tmp") }
        XCTAssertEqual(leftovers, [], "writes rename their temporary file into place")
    }

    func testNoFolderStoresNothing() {
        let store = KeyedFileCache(folder: nil, suffix: ".test")
        store.write(key: "a", payload: [1])
        XCTAssertNil(store.read(key: "a"))
        XCTAssertNil(CUDNNPlanMemory(folder: nil, environment: "e").recall("p"))
    }

    func testPlanChoiceIsRecalledForTheSameProblemAndEnvironmentOnly() {
        let memory = CUDNNPlanMemory(folder: folder, environment: "cuDNN 91400, H100 sm_90")
        XCTAssertNil(memory.recall("conv A"))
        memory.remember("conv A", .init(fused: true, config: 3, workspaceLimit: 1 << 31))
        memory.remember("conv B", .init(fused: false, config: 0, workspaceLimit: 0))
        XCTAssertEqual(memory.recall("conv A"), .init(fused: true, config: 3, workspaceLimit: 1 << 31))
        XCTAssertEqual(memory.recall("conv B"), .init(fused: false, config: 0, workspaceLimit: 0))
        XCTAssertNil(CUDNNPlanMemory(folder: folder, environment: "cuDNN 91500, H100 sm_90").recall("conv A"))
    }

    /// A choice taken untimed (its finalize compiled kernels) reads back as untimed; a timed one as timed.
    func testUntimedChoiceRoundTrips() {
        let memory = CUDNNPlanMemory(folder: folder, environment: "e")
        let untimed = CUDNNPlanMemory.Choice(fused: true, config: 0, workspaceLimit: 1 << 30, timed: false)
        XCTAssertEqual(untimed.text, "fused 1 config 0 limit 1073741824 untimed")
        memory.remember("conv A", untimed)
        XCTAssertEqual(memory.recall("conv A"), untimed)
        XCTAssertEqual(memory.recall("conv A")?.timed, false)
        memory.remember("conv A", .init(fused: true, config: 2, workspaceLimit: 1 << 30))
        XCTAssertEqual(memory.recall("conv A")?.timed, true, "a timed choice replaces the untimed one")
    }

    func testDamagedChoiceIsAMiss() {
        for text in [
            "", "fused 1 config", "fused 2 config 1 limit 0", "fused 1 config -1 limit 0", "fused 0 config x limit 0", "fused 1 config 3",
            "fused 1 config 3 limit -5", "fused 1 config 3 limit 0 extra", "config 3 fused 1 limit 0", "fused 1 config 3 size 0",
        ] {
            XCTAssertNil(CUDNNPlanMemory.Choice(text: text), text)
        }
        XCTAssertEqual(CUDNNPlanMemory.Choice(text: "fused 0 config 12 limit 2147483648"), .init(fused: false, config: 12, workspaceLimit: 1 << 31))
        XCTAssertNil(CUDNNPlanMemory.Choice(text: "fused 0 config 12 limit 0 timed"))
        XCTAssertNil(CUDNNPlanMemory.Choice(text: "fused 0 config 12 limit 0 untimed x"))
        let memory = CUDNNPlanMemory(folder: folder, environment: "e")
        memory.store.write(key: "cudnn plan choice\ne\nconv A", payload: Array("fused 1 config".utf8))
        XCTAssertNil(memory.recall("conv A"))
        memory.store.write(key: "cudnn plan choice\ne\nconv A", payload: [0xff, 0xfe])
        XCTAssertNil(memory.recall("conv A"))
    }

    func testConvolutionProblemTextNamesEverythingThePlanDependsOn() {
        let key = CUDNNChannelsLastConvolution.Key(
            input: [1, 3, 60, 104, 96], filter: [96, 3, 3, 3, 96], stride: [1, 1, 1], padding: [0, 1, 1], dtype: .bf16, bias: true,
            residual: false, fusion: true, alignment: [16, 16, 16, 16, 0])
        var other = key
        other.alignment = [16, 16, 8, 16, 0]
        XCTAssertNotEqual(key.text, other.text)
        other = key
        other.residual = true
        XCTAssertNotEqual(key.text, other.text)
        other = key
        other.padding = [0, 0, 0]
        XCTAssertNotEqual(key.text, other.text)
    }
}

// The launch path's source comparison: byte equality, including texts that are equal only up to Unicode
// normalization (different bytes: different kernels).
final class KernelSourceComparisonTests: XCTestCase {
    func testSameBytes() {
        XCTAssertTrue(KernelCache.sameBytes("", ""))
        XCTAssertTrue(KernelCache.sameBytes("__global__ void k() {}", "__global__ void k()" + " {}"))
        XCTAssertFalse(KernelCache.sameBytes("abc", "abd"))
        XCTAssertFalse(KernelCache.sameBytes("abc", "abcd"))
        XCTAssertFalse(KernelCache.sameBytes("\u{E9}", "e\u{301}"), "canonically equivalent, different bytes")
    }
}
