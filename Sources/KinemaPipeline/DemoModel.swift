import Foundation
import KinemaCore

// The bundled demo model (tools/demo-model/): a tiny Wan text-to-video model trained on a synthetic world
// of coloured shapes, shipped as `models/kinema-demo/` in the source tree:
//
//   models/kinema-demo/                 diffusers pipeline folder: the base model (UniPC + CFG)
//     kinema_defaults.json              its sampling defaults (LightX2V keys: size, steps, guidance, …)
//     distill/                          the 4-step student: config.json + diffusion_pytorch_model.safetensors
//       lightx2v_config.json            step-distill settings (denoising_step_list, no CFG, size)
//
// `kinema generate` without --model runs the student with its config, or the base model with its defaults
// when the folder has no distill/ (a bundle ships the student only once it passes the meaning test, see
// tools/demo-model/STATUS.md). Where the folder is looked for, first
// hit wins: $KINEMA_DEMO_MODEL; `kinema-demo/` and `models/kinema-demo/` beside the executable and in each of
// its parent folders (covers a copied binary and `.build/<config>/kinema` inside the checkout); the same
// under the current directory and its parents.

public struct DemoModel: Sendable, Equatable {
    /// The pipeline folder (base model).
    public let folder: String
    /// The 4-step student's transformer folder.
    public var studentTransformer: String { folder + "/distill" }
    /// The student's step-distill settings.
    public var studentConfig: String { folder + "/distill/lightx2v_config.json" }

    public static let folderName = "kinema-demo"

    /// The two models in the folder.
    public enum Variant: String, Sendable, CaseIterable {
        /// The 4-step student with the step-distill sampler, no CFG (the default).
        case student
        /// The base model with UniPC and CFG, at the folder's default step count.
        case base
    }

    public init(folder: String) { self.folder = folder }

    /// Whether the folder has the 4-step student (distill/ with its transformer).
    public var hasStudent: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: studentTransformer, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// What `kinema generate` runs without --model: the student when the folder has one, else the base model.
    public var defaultVariant: Variant { hasStudent ? .student : .base }

    /// The model folder with the variant's transformer.
    public func modelFolder(_ variant: Variant) throws -> WanModelFolder {
        try WanModelFolder.locate(folder, transformerOverride: variant == .student ? studentTransformer : nil)
    }

    /// Settings as `kinema generate` makes them for this folder: defaults, kinema_defaults.json, then (for
    /// the student) its lightx2v_config.json.
    public func settings(prompt: String, seed: UInt64, variant: Variant) throws -> GenerationSettings {
        let model = try modelFolder(variant)
        var settings = GenerationSettings(prompt: prompt)
        settings.sampler.shift = model.schedulerShift ?? 5
        for path in [model.defaultsConfig, variant == .student ? studentConfig : nil].compactMap({ $0 }) {
            guard let data = FileManager.default.contents(atPath: path) else { throw KinemaError.io(path: path, reason: "cannot read") }
            try LightX2VConfig.parse(data, origin: path).apply(to: &settings)
        }
        settings.seed = seed
        try settings.validate()
        return settings
    }

    /// Finds the demo model, or throws an error that lists where it looked.
    /// `executable`: path of the running binary (nil: unknown); `currentDirectory`: the working directory.
    public static func locate(
        executable: String?, currentDirectory: String, environment: RuntimeOptions = .current
    ) throws -> DemoModel {
        if let configured = environment.demoModel {
            guard isDemoFolder(configured) else {
                throw KinemaError.io(
                    path: configured,
                    reason: "KINEMA_DEMO_MODEL does not name a demo model folder (expected model_index.json and kinema_defaults.json)")
            }
            return DemoModel(folder: configured)
        }
        let candidates = searchPaths(executable: executable, currentDirectory: currentDirectory)
        for candidate in candidates where isDemoFolder(candidate) { return DemoModel(folder: candidate) }
        // A source checkout whose training scripts are present but whose trained model is not (yet) committed.
        let untrained = candidates.contains { ($0 as NSString).deletingLastPathComponent.hasSuffix("/models")
            && FileManager.default.fileExists(atPath: ((($0 as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent) + "/tools/demo-model/train.py") }
        throw KinemaError.io(
            path: folderName,
            reason: "no --model given and the bundled demo model was not found; looked in "
                + candidates.joined(separator: ", ")
                + ". Pass --model FOLDER, set KINEMA_DEMO_MODEL, or run from the source checkout (models/kinema-demo)"
                + (untrained ? ". This checkout has the demo model's training scripts but no trained model yet (tools/demo-model/STATUS.md);"
                    + " the tiny test model works: --model Tests/Fixtures/wan_pipeline/diffusers" : ""))
    }

    /// Every folder `locate` tries, in order, without duplicates.
    public static func searchPaths(executable: String?, currentDirectory: String) -> [String] {
        var roots: [String] = []
        if let executable {
            let resolved = (executable as NSString).resolvingSymlinksInPath
            roots += ancestors(of: (absolute(resolved, from: currentDirectory) as NSString).deletingLastPathComponent)
        }
        roots += ancestors(of: currentDirectory)
        var seen = Set<String>()
        var paths: [String] = []
        for root in roots {
            let base = root.hasSuffix("/") ? String(root.dropLast()) : root
            for candidate in [base + "/" + folderName, base + "/models/" + folderName] where seen.insert(candidate).inserted {
                paths.append(candidate)
            }
        }
        return paths
    }

    /// A diffusers pipeline folder with its own sampling defaults (what the demo export writes); the student is optional.
    static func isDemoFolder(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/model_index.json")
            && FileManager.default.fileExists(atPath: path + "/kinema_defaults.json")
    }

    static func absolute(_ path: String, from directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }

    /// `path` and its parents up to the root, nearest first (at most 12 levels).
    static func ancestors(of path: String) -> [String] {
        var out: [String] = []
        var current = (path as NSString).standardizingPath
        for _ in 0..<12 {
            out.append(current)
            let parent = (current as NSString).deletingLastPathComponent
            if parent == current || parent.isEmpty { break }
            current = parent
        }
        return out
    }
}
