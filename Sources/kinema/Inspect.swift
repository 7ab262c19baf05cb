import ArgumentParser
import Foundation
import KinemaCore
import KinemaPipeline

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors and the model, layout and configuration detected from them.",
        discussion: "PATH may be a .safetensors file, a *.safetensors.index.json, a model folder or a diffusers pipeline folder.")

    @Argument(help: "Checkpoint file or folder.")
    var path: String

    @Flag(help: "Print only the summary, not every tensor.")
    var summary = false

    func run() throws {
        try runReportingErrors {
            let report = try CheckpointInspector.inspect(path)
            var lines: [String] = []
            if !summary {
                let nameWidth = min(72, report.tensors.map(\.name.count).max() ?? 4)
                for tensor in report.tensors {
                    let name = tensor.name.padding(toLength: max(nameWidth, tensor.name.count), withPad: " ", startingAt: 0)
                    let dtype = tensor.dtype.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
                    let shape = "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]"
                    lines.append("\(name)  \(dtype) \(shape.padding(toLength: 24, withPad: " ", startingAt: 0)) \(formatBytes(tensor.byteCount))")
                }
                lines.append("")
            }
            lines.append("path:      \(report.path)")
            if let folder = report.folderLayout { lines.append("folder:    \(folder)") }
            lines.append("tensors:   \(report.tensors.count), \(formatBytes(report.totalBytes))")
            let histogram = report.dtypeHistogram.sorted { $0.value > $1.value }.map { "\($0.key.rawValue) ×\($0.value)" }
            lines.append("dtypes:    \(histogram.joined(separator: ", "))")
            if let model = report.model { lines.append("model:     \(model)") }
            if let layout = report.keyLayout { lines.append("layout:    \(layout) key names") }
            if let c = report.wanConfig {
                lines.append(
                    "config:    dim \(c.dim), ffn \(c.ffnDim), heads \(c.numHeads) × \(c.headDim), layers \(c.numLayers), in \(c.inDim), out \(c.outDim), text \(c.textDim), freq \(c.freqDim)"
                        + (c.imageDim.map { ", image \($0)" } ?? "") + (c.imagePositionTokens.map { ", image positions \($0)" } ?? ""))
            }
            for note in report.notes { lines.append("note:      \(note)") }
            print(lines.joined(separator: "\n"))
        }
    }
}

func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
