import ArgumentParser
import Foundation
import KinemaCore
import KinemaPipeline

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the CPU and GPU setup and check every CUDA op and the model goldens against the references.",
        discussion: "Without a GPU it says so and exits cleanly. With one, it prints a pass/fail table and exits 1 if any check fails.")

    @Option(help: "CUDA device ordinal.") var device = 0
    @Option(help: "Reference fixtures folder (Tests/Fixtures of the source tree) for the model goldens; skipped if absent.")
    var fixtures = "Tests/Fixtures"

    func run() throws {
        let report = KinemaPipeline.Doctor.run(device: device, fixtures: fixtures)
        for (key, value) in report.facts {
            print(key.padding(toLength: 14, withPad: " ", startingAt: 0) + value)
        }
        guard report.gpuAvailable else {
            print("\nNo usable CUDA GPU here: Kinema runs on the CPU (--device cpu).")
            return
        }
        print("")
        let width = max(40, report.checks.map(\.name.count).max() ?? 0)
        for check in report.checks {
            let status = check.passed ? "pass" : "FAIL"
            let error = check.relativeError.map { String(format: "%.2e", $0) } ?? "-"
            let tolerance = check.tolerance.map { String(format: "%.0e", $0) } ?? "-"
            print("\(status)  \(check.name.padding(toLength: width, withPad: " ", startingAt: 0))  rel-L2 \(error)  (≤ \(tolerance))  \(check.detail)")
        }
        let failed = report.checks.filter { !$0.passed }.count
        print("\n\(report.checks.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
