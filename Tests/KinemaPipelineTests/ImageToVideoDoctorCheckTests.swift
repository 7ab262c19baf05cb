import KinemaCPU
import KinemaTestSupport
import XCTest

@testable import KinemaPipeline

// The doctor's I2V / FLF2V pipeline checks (run on the GPU by `kinema doctor`) pass on the CPU backend, so a
// GPU failure points at the GPU, not at the check.
final class ImageToVideoDoctorCheckTests: XCTestCase {
    func testImageToVideoChecksPassOnCPU() {
        let checks = ModelGoldenChecks.imageToVideo(gpu: CPUBackend.shared, fixtures: Fixtures.path(""))
        XCTAssertEqual(checks.count, 2)
        for check in checks {
            XCTAssertTrue(check.passed, "\(check.name): \(check.relativeError.map { "\($0)" } ?? "-") \(check.detail)")
            print("doctor check \(check.name): relL2 \(check.relativeError ?? -1)")
        }
    }
}
