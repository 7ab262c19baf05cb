import KinemaCore
import XCTest

@testable import KinemaCUDA

// Which problems KINEMA_ATTENTION=wgmma sends to the Hopper kernel (no GPU needed: shapes, strides,
// addresses and architecture only). Whether the kernel computes the right numbers is `kinema doctor`'s
// "wgmma attention …" rows on an H100.
final class WGMMAAttentionTests: XCTestCase {
    /// [B, L, H, D] bf16 memory seen as [B, H, L, D].
    private func heads(_ length: Int, heads: Int = 2, d: Int = 128, dtype: DType = .bf16) throws -> Tensor {
        try Tensor([Float](repeating: 0.5, count: length * heads * d), shape: [1, length, heads, d], dtype: dtype).permuted([0, 2, 1, 3])
    }

    private func reason(_ q: Tensor, _ k: Tensor, _ v: Tensor, addresses: [UInt64] = [0, 4096, 8192], architecture: String = "sm_90a") -> String? {
        WGMMAAttentionKernel.unsupportedReason(query: q, key: k, value: v, addresses: addresses, architecture: architecture)
    }

    func testAcceptsStridedBF16HeadDim128OnHopper() throws {
        let (q, k) = (try heads(37), try heads(300))
        XCTAssertNil(reason(q, k, k))
    }

    func testRejectsWhatTheKernelCannotRun() throws {
        let (q, k) = (try heads(37), try heads(53))
        XCTAssertNotNil(reason(q, k, k, architecture: "sm_89"))
        XCTAssertNotNil(reason(q, k, k, architecture: "sm_100"))
        XCTAssertNotNil(reason(try heads(37, dtype: .f32), try heads(53, dtype: .f32), try heads(53, dtype: .f32)))
        XCTAssertNotNil(reason(try heads(37, d: 64), try heads(53, d: 64), try heads(53, d: 64)))
        XCTAssertNotNil(reason(q, k, k, addresses: [0, 8, 4096]))  // 8-byte aligned only
        // Row stride 388 elements (776 bytes): not a multiple of 16 bytes.
        let wide = try Tensor([Float](repeating: 0, count: 10 * 388), shape: [1, 10, 388], dtype: .bf16)
        let odd = try XCTUnwrap(try wide.narrowed(axis: 2, start: 0, length: 128).viewed(as: [1, 10, 1, 128])).permuted([0, 2, 1, 3])
        XCTAssertNotNil(reason(odd, odd, odd))
    }

    func testSharedMemoryFitsOneHopperBlock() {
        // 227 KiB is the most dynamic shared memory one block may opt into on sm_90.
        XCTAssertLessThanOrEqual(WGMMAAttentionKernel.sharedBytes, 227 * 1024)
    }
}
