import Foundation
import KinemaCore
import KinemaIO

/// Test fixtures under `Tests/Fixtures/`, located from this source file's path so tests find them from
/// any working directory (SwiftPM runs test bundles from the package root, IDEs often do not).
public enum Fixtures {
    /// Absolute path of `Tests/Fixtures`.
    public static let root: String = {
        // This file is Tests/KinemaTestSupport/Fixtures.swift; its grandparent is Tests/.
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return tests.appendingPathComponent("Fixtures").path
    }()

    /// Absolute path of a fixture given relative to `Tests/Fixtures`.
    public static func path(_ relative: String) -> String {
        (root as NSString).appendingPathComponent(relative)
    }

    /// Opens a fixture checkpoint (a .safetensors file, an index or a directory) with `SafeTensors.open`.
    public static func open(_ relative: String) throws -> any TensorSource {
        try SafeTensors.open(path(relative))
    }
}
