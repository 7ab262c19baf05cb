import KinemaPipeline
import XCTest

// `kinema doctor` must answer cleanly on machines without a GPU (CI) and list what it found.

final class DoctorTests: XCTestCase {
    func testReportsTheSetupWithoutCrashing() throws {
        let report = Doctor.run(fixtures: nil)
        XCTAssertTrue(report.facts.contains { $0.0 == "CPU GEMM" })
        if report.gpuAvailable {
            XCTAssertFalse(report.checks.isEmpty)
        } else {
            XCTAssertTrue(report.checks.isEmpty)
            let cuda = try XCTUnwrap(report.facts.first { $0.0 == "CUDA" }?.1)
            XCTAssertTrue(cuda.contains("not available") && cuda.contains("libcuda"), cuda)
        }
    }
}
