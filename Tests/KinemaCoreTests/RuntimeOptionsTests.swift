import KinemaCore
import XCTest

final class RuntimeOptionsTests: XCTestCase {
    func testSizesParse() {
        XCTAssertEqual(RuntimeOptions.parseBytes("20G"), 20 << 30)
        XCTAssertEqual(RuntimeOptions.parseBytes("512M"), 512 << 20)
        XCTAssertEqual(RuntimeOptions.parseBytes("1.5GiB"), 3 << 29)
        XCTAssertEqual(RuntimeOptions.parseBytes("2GB"), 2_000_000_000)
        XCTAssertEqual(RuntimeOptions.parseBytes("1073741824"), 1 << 30)
        for bad in ["", "12Q", "-1G", "G", "ten"] { XCTAssertNil(RuntimeOptions.parseBytes(bad), bad) }
    }

    func testEnvironmentIsReadInOnePlace() {
        let options = RuntimeOptions(environment: [
            "KINEMA_THREADS": "3", "KINEMA_BLAS": "off", "KINEMA_MAX_VRAM": "8G", "KINEMA_KERNEL_CACHE": "off", "PATH": "/a:/b",
        ])
        XCTAssertEqual(options.threads, 3)
        XCTAssertEqual(options.blas, "off")
        XCTAssertEqual(options.maxDeviceMemory, 8 << 30)
        XCTAssertNil(options.kernelCacheDirectory)
        XCTAssertEqual(options.executableSearchPath, ["/a", "/b"])
        XCTAssertEqual(RuntimeOptions(environment: ["KINEMA_THREADS": "0", "HOME": "/h"]).threads, 1)
        XCTAssertEqual(RuntimeOptions(environment: ["HOME": "/h"]).kernelCacheDirectory, "/h/.cache/kinema/kernels")
        XCTAssertEqual(RuntimeOptions(environment: [:]).cudnnPlanCandidates, 4)
        XCTAssertEqual(RuntimeOptions(environment: ["KINEMA_CUDNN_CANDIDATES": "1"]).cudnnPlanCandidates, 1)
        XCTAssertEqual(RuntimeOptions(environment: ["KINEMA_CUDNN_CANDIDATES": "0"]).cudnnPlanCandidates, 1)
        XCTAssertFalse(RuntimeOptions(environment: [:]).doctorTrace)
        XCTAssertFalse(RuntimeOptions(environment: ["KINEMA_DOCTOR_TRACE": "0"]).doctorTrace)
        XCTAssertTrue(RuntimeOptions(environment: ["KINEMA_DOCTOR_TRACE": "1"]).doctorTrace)
    }

    func testFusedPassesSwitch() {
        XCTAssertTrue(RuntimeOptions(environment: [:]).fusedPasses)
        XCTAssertTrue(RuntimeOptions(environment: ["KINEMA_FUSED": "1"]).fusedPasses)
        for off in ["0", "off", "OFF", "false", "no"] {
            XCTAssertFalse(RuntimeOptions(environment: ["KINEMA_FUSED": off]).fusedPasses, off)
        }
    }

    /// Switches on by default (the kernel prewarm) and off by default (the convolution planning pass).
    func testDefaultOnAndDefaultOffSwitches() {
        XCTAssertTrue(RuntimeOptions(environment: [:]).kernelPrewarm)
        XCTAssertFalse(RuntimeOptions(environment: ["KINEMA_KERNEL_PREWARM": "off"]).kernelPrewarm)
        XCTAssertFalse(RuntimeOptions(environment: [:]).convolutionPlanning)
        XCTAssertFalse(RuntimeOptions(environment: ["KINEMA_CONV_PLANNING": "maybe"]).convolutionPlanning)
        for on in ["1", "on", "ON", "true", "yes"] {
            XCTAssertTrue(RuntimeOptions(environment: ["KINEMA_CONV_PLANNING": on]).convolutionPlanning, on)
        }
    }
}
