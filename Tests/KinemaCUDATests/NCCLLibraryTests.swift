import Foundation
import KinemaCore
import XCTest

@testable import KinemaCUDA

// NCCL loads through dlopen and reports its version without a GPU. Skipped where no libnccl.so.2 is found.
final class NCCLLibraryTests: XCTestCase {
    func testVersionIsReadFromAPipWheel() throws {
        var folders: [String] = []
        for root in ["/opt/refenv/lib", "/usr/local/lib", "/usr/lib"] {
            let pythons = (try? FileManager.default.contentsOfDirectory(atPath: root))?.filter { $0.hasPrefix("python3") } ?? []
            for python in pythons.sorted() {
                for site in ["site-packages", "dist-packages"] { folders.append("\(root)/\(python)/\(site)/nvidia/nccl/lib") }
            }
        }
        guard let folder = folders.first(where: { FileManager.default.fileExists(atPath: $0 + "/libnccl.so.2") }) else {
            throw XCTSkip("no libnccl.so.2 on this machine")
        }
        let options = RuntimeOptions(environment: ["KINEMA_CUDA_LIB_PATH": folder])
        let (_, code) = try NCCLLibrary.open(options: options)
        XCTAssertGreaterThanOrEqual(code, 20900)
        XCTAssertTrue(NCCLLibrary.description(options: options).hasPrefix("2."), NCCLLibrary.description(options: options))
    }

    func testVersionText() {
        XCTAssertEqual(NCCLLibrary.versionText(22703), "2.27.3")
        XCTAssertEqual(NCCLLibrary.versionText(2804), "2.8.4")
    }

    func testMissingLibraryIsDescribedNotThrown() {
        let options = RuntimeOptions(environment: ["KINEMA_CUDA_LIB_PATH": "/nonexistent"])
        // Where the loader finds a system NCCL anyway, the description is a version; otherwise it says why.
        let text = NCCLLibrary.description(options: options)
        XCTAssertTrue(text.hasPrefix("2.") || text.contains("NCCL not found"), text)
    }
}
