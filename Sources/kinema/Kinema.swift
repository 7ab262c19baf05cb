import ArgumentParser
import Foundation
import KinemaCore
import KinemaNN
import KinemaPipeline
import Logging

@main
struct Kinema: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kinema",
        abstract: "Wan-family video diffusion inference: inspect checkpoints and run model components.",
        discussion: """
            Kinema loads Wan2.1 checkpoints in the diffusers layout, the original Wan layout and LightX2V / \
            ComfyUI single files, and runs them on the CPU (CUDA arrives in a later release).

            Environment: KINEMA_THREADS (CPU worker threads), KINEMA_BLAS (BLAS library path or "off"), \
            KINEMA_DEBUG (0–3). See docs/env-vars.md.
            """,
        version: KinemaVersion.string,
        subcommands: [Generate.self, Inspect.self, Forward.self, Bench.self, Doctor.self, CUDNNProbeCommand.self])
}

enum KinemaVersion {
    static let string = "0.1.0-dev"
}

/// Options shared by commands that compute.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Numeric precision: f32 (reference) or bf16 (weights and GEMM/attention operands in bf16).")
    var precision: Precision = .f32

    @Option(help: "Device: cpu, cuda or cuda:N.")
    var device: DeviceArgument = DeviceArgument(device: .cpu)

    @Option(help: "GPU memory budget for Kinema's allocator, e.g. 20G or 512M (default: KINEMA_MAX_VRAM, else none).")
    var maxVram: String?

    /// The parsed --max-vram, validated before anything loads.
    func memoryBudget() throws -> Int? {
        guard let maxVram else { return nil }
        guard let bytes = RuntimeOptions.parseBytes(maxVram), bytes > 0 else {
            throw KinemaError.invalidArgument("--max-vram: expected a size such as 20G, 512M or 1073741824, got '\(maxVram)'")
        }
        return bytes
    }

    func makeBackend() throws -> any Backend {
        try Backends.make(device.device, maxDeviceMemory: try memoryBudget())
    }
}

struct DeviceArgument: ExpressibleByArgument {
    let device: Device
    init(device: Device) { self.device = device }
    init?(argument: String) {
        guard let parsed = Device(parsing: argument) else { return nil }
        device = parsed
    }
    var defaultValueDescription: String { device.description }
}

extension Precision: ExpressibleByArgument {}
extension ModelComponent: ExpressibleByArgument {}

func makeLogger() -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = RuntimeOptions.current.debugLevel > 0 ? .debug : .info
        return handler
    }
    return Logger(label: "kinema")
}

/// Turns library errors into a clean message and exit code instead of a stack trace.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as KinemaError {
        FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
        throw ExitCode(1)
    }
}
