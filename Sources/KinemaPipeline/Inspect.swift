import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

/// What `kinema inspect` reports about a checkpoint.
public struct CheckpointReport {
    public var path: String
    public var tensors: [TensorInfo]
    public var totalBytes: Int
    public var dtypeHistogram: [DType: Int]
    /// Which model the tensors are, when recognized, with its layout and configuration.
    public var model: String?
    public var keyLayout: String?
    public var folderLayout: String?
    public var wanConfig: WanConfig?
    public var notes: [String]
}

public enum CheckpointInspector {
    public static func inspect(_ path: String) throws -> CheckpointReport {
        var notes: [String] = []
        var folderLayout: String?
        let source: any TensorSource
        var configJSON: (data: Data, origin: String)?
        if let files = try? ModelFiles.transformer(at: path) {
            source = files.weights
            folderLayout = files.layout.rawValue
            configJSON = try? ModelFiles.configJSON(files)
        } else {
            source = try SafeTensors.open(path)
        }
        let tensors = source.names.compactMap { source.info($0) }
        var histogram: [DType: Int] = [:]
        for tensor in tensors { histogram[tensor.dtype, default: 0] += 1 }
        var report = CheckpointReport(
            path: path, tensors: tensors, totalBytes: tensors.reduce(0) { $0 + $1.byteCount }, dtypeHistogram: histogram,
            model: nil, keyLayout: nil, folderLayout: folderLayout, wanConfig: nil, notes: [])
        // Recognize a Wan DiT by its key layout and derive its config without reading any tensor data.
        if let layout = KeyLayout.detect(stripWrapper(source.names), among: WanKeyLayouts.all) {
            let canonical = Dictionary(
                stripWrapper(source.names).enumerated().map { (layout.canonical($0.element), source.names[$0.offset]) },
                uniquingKeysWith: { first, _ in first })
            let info: (String) -> TensorInfo? = { key in canonical[key].flatMap { source.info($0) } }
            let detected = try? WanConfig.detect(info: info, keys: Array(canonical.keys))
            if let detected {
                var config = detected
                if let configJSON {
                    do { config = try WanConfig.parse(json: configJSON.data, origin: configJSON.origin, detected: detected) } catch {
                        notes.append("config.json: \(error)")
                    }
                }
                report.model = config.hasImageBranch ? "Wan2.1 DiT (image-to-video)" : "Wan2.1 DiT (text-to-video)"
                report.keyLayout = layout.name
                report.wanConfig = config
            }
        }
        if report.model == nil { notes.append("not recognized as a Wan transformer") }
        report.notes = notes
        return report
    }

    private static func stripWrapper(_ names: [String]) -> [String] {
        guard let prefix = commonWrapperPrefix(of: names, candidates: WanKeyLayouts.wrapperPrefixes) else { return names }
        return names.map { String($0.dropFirst(prefix.count)) }
    }
}
