import KinemaCPU
import KinemaCore
import XCTest

@testable import KinemaPipeline

// The doctor's channels-last rows (OpConsistency+ChannelsLast) are well formed: every case runs on the CPU
// backend (shapes valid, nothing throws) and the row names say what is tested, so a failure on the GPU
// points at the GPU op, not at the row.
final class ChannelsLastDoctorRowsTests: XCTestCase {
    func testChannelsLastRowsRunOnCPU() throws {
        var cases: [OpConsistency.Case] = []
        for dtype in [DType.f32, .bf16] { cases += try OpConsistency.channelsLastCases(dtype: dtype, tolerance: 0) }
        XCTAssertEqual(cases.filter(\.cudnn).count, 2 * OpConsistency.channelsLastConvs.count, "every conv row also runs with cuDNN forced")
        let checks = OpConsistency.check(cases, gpu: CPUBackend.shared) + OpConsistency.runUnfusedEpilogue(gpu: CPUBackend.shared)
        XCTAssertEqual(checks.count, cases.count + 2 * OpConsistency.channelsLastConvs.count)
        for check in checks {
            XCTAssertTrue(check.passed, "\(check.name): \(check.detail)")
        }
        let names = checks.map(\.name)
        for fragment in ["stride [1,2,2]", "stride [2,1,1]", "3×3×3", "1×1×1", "3×1×1", "1×3×3", "+bias +residual", "no bias", "rmsNorm+SiLU", "no weight"] {
            XCTAssertTrue(names.contains { $0.contains(fragment) }, "no row mentions \(fragment)")
        }
    }
}
