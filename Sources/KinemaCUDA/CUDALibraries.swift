import CKinema
import Foundation
import KinemaCore

// Finds and opens CUDA's shared libraries at run time. Search order: KINEMA_CUDA_LIB_PATH, the standard
// loader path (the bare soname), CUDA_HOME / the usual /usr/local/cuda folders, and the pip `nvidia/*`
// wheels of the Python installs on the machine. An error lists every place tried.

public struct LoadedLibrary: @unchecked Sendable {
    public let path: String
    let handle: UnsafeMutableRawPointer

    /// A typed C function pointer for `symbol`.
    func function<F>(_ symbol: String) throws -> F {
        guard let raw = ckinema_dlsym(handle, symbol) else {
            throw KinemaError.missingLibrary(name: "\(symbol) in \(path)", searched: [path])
        }
        return unsafeBitCast(raw, to: F.self)
    }

    func optionalFunction<F>(_ symbol: String) -> F? {
        ckinema_dlsym(handle, symbol).map { unsafeBitCast($0, to: F.self) }
    }
}

public enum CUDALibraries {
    /// Folders to look in after the loader's own search, most specific first.
    static func searchFolders(options: RuntimeOptions) -> [String] {
        var folders: [String] = []
        if let custom = options.cudaLibraryPath { folders.append(custom) }
        let environment = ProcessInfo.processInfo.environment
        for key in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment[key] { folders += [root + "/lib64", root + "/lib"] }
        }
        folders += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu",
                    "/usr/local/nvidia/lib64"]
        // pip wheels: site-packages/nvidia/<component>/lib
        let sitePackages = ["/usr/local/lib/python3.12/dist-packages", "/usr/lib/python3/dist-packages",
                            "/opt/torch/.venv/lib/python3.12/site-packages", "/usr/local/lib/python3.12/site-packages"]
        for site in sitePackages {
            for component in ["cu13", "cuda_nvrtc", "cublas", "cudnn", "nccl", "cuda_runtime"] {
                folders.append("\(site)/nvidia/\(component)/lib")
            }
        }
        return folders
    }

    /// Opens the first loadable candidate among `sonames`, looking in KINEMA_CUDA_LIB_PATH first, then the
    /// loader's path, then the folders above. The error names the folders that exist and were searched.
    public static func open(_ sonames: [String], options: RuntimeOptions = .current) throws -> LoadedLibrary {
        var candidates: [String] = []
        if let custom = options.cudaLibraryPath { candidates += sonames.map { custom + "/" + $0 } }
        candidates += sonames
        let folders = searchFolders(options: options).filter { FileManager.default.fileExists(atPath: $0) }
        for folder in folders { candidates += sonames.map { folder + "/" + $0 } }
        for candidate in candidates {
            if candidate.hasPrefix("/") && !FileManager.default.fileExists(atPath: candidate) { continue }
            if let handle = ckinema_dlopen(candidate) {
                return LoadedLibrary(path: candidate, handle: handle)
            }
        }
        var searched = ["the dynamic loader's path"] + folders
        if let custom = options.cudaLibraryPath, !folders.contains(custom) { searched.insert(custom + " (KINEMA_CUDA_LIB_PATH, missing)", at: 0) }
        var unique: [String] = []
        for folder in searched where !unique.contains(folder) { unique.append(folder) }
        throw KinemaError.missingLibrary(name: sonames.joined(separator: " or "), searched: unique)
    }
}
