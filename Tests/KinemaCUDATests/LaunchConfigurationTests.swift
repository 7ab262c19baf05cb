import KinemaCore
import XCTest

@testable import KinemaCUDA

// Host-side launch arithmetic of the CUDA backend, checked without a GPU: CUDA's grid/block limits, the
// block sizes of the fused row kernels, and the operand alignment cuBLASLt's heuristic is told about.
final class LaunchConfigurationTests: XCTestCase {
    func testLaunchLimitsAcceptWhatCUDAAccepts() throws {
        try LaunchLimits.check("k", grid: (Int(Int32.max), 65535, 65535), block: (1024, 1, 1))
        try LaunchLimits.check("k", grid: (1, 1, 1), block: (16, 16, 4))
        try LaunchLimits.check("k", grid: (1, 1, 1), block: (1, 1, 64))
    }

    func testLaunchLimitsRejectOversizedOrEmptyLaunches() {
        // kinema_gemm's grid.y is ⌈M/16⌉: M = 1,048,577 rows is one block row past 65535.
        let m = 1_048_577
        XCTAssertThrowsError(try LaunchLimits.check("kinema_gemm", grid: (1, (m + 15) / 16, 1), block: (16, 16, 1))) { error in
            XCTAssertTrue("\(error)".contains("kinema_gemm"), "\(error)")
        }
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (Int(Int32.max) + 1, 1, 1), block: (32, 1, 1)))
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (1, 1, 65536), block: (32, 1, 1)))
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (0, 1, 1), block: (32, 1, 1)))
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (1, 1, 1), block: (1056, 1, 1)))
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (1, 1, 1), block: (64, 32, 1)))  // 2048 threads
        XCTAssertThrowsError(try LaunchLimits.check("k", grid: (1, 1, 1), block: (1, 1, 65)))
    }

    func testFusedRowKernelBlockSizes() {
        // Wan widths: 1536 (1.3B), 5120 (14B); each thread keeps 8 values (4 pairs for RMSNorm+RoPE).
        XCTAssertEqual(FusedKernels.threads(count: 1536, perThread: FusedKernels.valuesPerThread), 192)
        XCTAssertEqual(FusedKernels.threads(count: 5120, perThread: FusedKernels.valuesPerThread), 640)
        XCTAssertEqual(FusedKernels.threads(count: 5120 / 2, perThread: FusedKernels.pairsPerThread), 640)
        XCTAssertEqual(FusedKernels.threads(count: 1, perThread: 8), 32)  // block_sum needs whole warps
        XCTAssertEqual(FusedKernels.threads(count: 8192, perThread: 8), 1024)
        XCTAssertNil(FusedKernels.threads(count: 8193, perThread: 8))  // would need 1025 threads: callers compose
        for width in stride(from: 1, through: 8192, by: 37) {
            guard let threads = FusedKernels.threads(count: width, perThread: 8) else { return XCTFail("width \(width)") }
            XCTAssertEqual(threads % 32, 0)
            XCTAssertGreaterThanOrEqual(threads * 8, width)
        }
    }

    func testCUBLASLtAlignmentOfOperandAddresses() {
        XCTAssertEqual(CUBLASLt.alignment(of: 0x7f00_0000_0000), 256)  // a fresh allocation
        XCTAssertEqual(CUBLASLt.alignment(of: 0x7f00_0000_0000 + 512 * 3), 256)
        // A bf16 view narrowed to column 1536 of a [L, 3·1536] row: 3072 bytes in, 256-aligned still.
        XCTAssertEqual(CUBLASLt.alignment(of: 0x7f00_0000_0000 + 1536 * 2), 256)
        XCTAssertEqual(CUBLASLt.alignment(of: 0x7f00_0000_0000 + 40 * 2), 16)  // column 40 of a bf16 row
        XCTAssertEqual(CUBLASLt.alignment(of: 0x7f00_0000_0000 + 2), 2)
    }
}
