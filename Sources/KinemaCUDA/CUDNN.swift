import Foundation
import KinemaCore

// cuDNN 9, resolved from libcudnn.so.9 at run time (searched like the other CUDA libraries, including the
// pip `nvidia/cudnn/lib` wheel). Optional: when it is missing, attention and convolutions use Kinema's
// own kernels. One handle per context, bound to the context's stream, so cuDNN work is ordered with ours.
//
// Two APIs are used: the backend (graph) API for fused attention (CUDNNAttention.swift) and the legacy
// convolution API for conv3d (CUDNNConvolution.swift). Every call is checked; an error carries
// cudnnGetErrorString and cudnnGetLastErrorString.

/// Which implementation runs an op that cuDNN can also do (KINEMA_ATTENTION, KINEMA_CONV).
public enum LibraryChoice: String, Sendable, CaseIterable {
    /// cuDNN when it loaded and accepts the problem, else Kinema's kernel.
    case auto
    /// cuDNN or an error (no silent fallback): for probes and comparisons.
    case cudnn
    /// Kinema's own kernel always.
    case kinema
    /// Attention only: Kinema's Hopper wgmma kernel where it applies (sm_90, bf16, d = 128, 16-byte aligned
    /// rows), Kinema's mma.sync kernel otherwise; never cuDNN. Opt-in while it is unmeasured.
    case wgmma

    /// Parses an environment value; nil or empty means `auto`. `wgmma` only where `allowsWGMMA`.
    static func parse(_ text: String?, variable: String, allowsWGMMA: Bool = false) throws -> LibraryChoice {
        guard let text, !text.isEmpty else { return .auto }
        let expected = allowsWGMMA ? "auto, cudnn, kinema, wgmma" : "auto, cudnn, kinema"
        guard let choice = LibraryChoice(rawValue: text.lowercased()), choice != .wgmma || allowsWGMMA else {
            throw KinemaError.invalidArgument("\(variable)=\(text): expected one of \(expected)")
        }
        return choice
    }
}

final class CUDNN: @unchecked Sendable {
    typealias Handle = OpaquePointer
    typealias Descriptor = OpaquePointer

    let library: LoadedLibrary
    /// cudnnGetVersion: major·10000 + minor·100 + patch for cuDNN 9 (e.g. 91300 = 9.13.0).
    let version: Int
    /// nil only for a library opened without a GPU (tests build graphs without executing them).
    private(set) var handle: Handle?

    // Core
    private let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    private let getLastErrorString: (@convention(c) (UnsafeMutablePointer<CChar>, Int) -> Void)?
    private let destroy: @convention(c) (Handle?) -> Int32
    // Backend (graph) API
    let backendCreate: @convention(c) (Int32, UnsafeMutablePointer<Descriptor?>) -> Int32
    let backendDestroy: @convention(c) (Descriptor?) -> Int32
    let backendSet: @convention(c) (Descriptor?, Int32, Int32, Int64, UnsafeRawPointer) -> Int32
    let backendGet: @convention(c) (Descriptor?, Int32, Int32, Int64, UnsafeMutablePointer<Int64>?, UnsafeMutableRawPointer?) -> Int32
    let backendFinalize: @convention(c) (Descriptor?) -> Int32
    let backendExecute: @convention(c) (Handle?, Descriptor?, Descriptor?) -> Int32
    // Legacy convolution API (nil when this build of cuDNN lacks it; conv3d then uses Kinema's kernel)
    let legacy: LegacyConvolutionAPI?

    /// Bound entry points of the legacy tensor/filter/convolution API.
    struct LegacyConvolutionAPI {
        let createTensor: @convention(c) (UnsafeMutablePointer<Descriptor?>) -> Int32
        let setTensorNd: @convention(c) (Descriptor?, Int32, Int32, UnsafePointer<Int32>, UnsafePointer<Int32>) -> Int32
        let destroyTensor: @convention(c) (Descriptor?) -> Int32
        let createFilter: @convention(c) (UnsafeMutablePointer<Descriptor?>) -> Int32
        let setFilterNd: @convention(c) (Descriptor?, Int32, Int32, Int32, UnsafePointer<Int32>) -> Int32
        let destroyFilter: @convention(c) (Descriptor?) -> Int32
        let createConvolution: @convention(c) (UnsafeMutablePointer<Descriptor?>) -> Int32
        let setConvolutionNd: @convention(c) (
            Descriptor?, Int32, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, Int32, Int32
        ) -> Int32
        let setMathType: @convention(c) (Descriptor?, Int32) -> Int32
        let destroyConvolution: @convention(c) (Descriptor?) -> Int32
        let findForwardEx: @convention(c) (
            Handle?, Descriptor?, UnsafeRawPointer?, Descriptor?, UnsafeRawPointer?, Descriptor?, Descriptor?,
            UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer, UnsafeMutableRawPointer?, Int
        ) -> Int32
        let getForwardV7: @convention(c) (
            Handle?, Descriptor?, Descriptor?, Descriptor?, Descriptor?, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer
        ) -> Int32
        let workspaceSize: @convention(c) (Handle?, Descriptor?, Descriptor?, Descriptor?, Descriptor?, Int32, UnsafeMutablePointer<Int>) -> Int32
        let forward: @convention(c) (
            Handle?, UnsafeRawPointer, Descriptor?, UnsafeRawPointer?, Descriptor?, UnsafeRawPointer?, Descriptor?, Int32,
            UnsafeMutableRawPointer?, Int, UnsafeRawPointer, Descriptor?, UnsafeMutableRawPointer?
        ) -> Int32

        init(_ lib: LoadedLibrary) throws {
            createTensor = try lib.function("cudnnCreateTensorDescriptor")
            setTensorNd = try lib.function("cudnnSetTensorNdDescriptor")
            destroyTensor = try lib.function("cudnnDestroyTensorDescriptor")
            createFilter = try lib.function("cudnnCreateFilterDescriptor")
            setFilterNd = try lib.function("cudnnSetFilterNdDescriptor")
            destroyFilter = try lib.function("cudnnDestroyFilterDescriptor")
            createConvolution = try lib.function("cudnnCreateConvolutionDescriptor")
            setConvolutionNd = try lib.function("cudnnSetConvolutionNdDescriptor")
            setMathType = try lib.function("cudnnSetConvolutionMathType")
            destroyConvolution = try lib.function("cudnnDestroyConvolutionDescriptor")
            findForwardEx = try lib.function("cudnnFindConvolutionForwardAlgorithmEx")
            getForwardV7 = try lib.function("cudnnGetConvolutionForwardAlgorithm_v7")
            workspaceSize = try lib.function("cudnnGetConvolutionForwardWorkspaceSize")
            forward = try lib.function("cudnnConvolutionForward")
        }
    }

    /// Opens libcudnn without creating a handle: enough for the version (works without a GPU).
    static func openLibrary(options: RuntimeOptions = .current) throws -> (library: LoadedLibrary, version: Int) {
        let lib = try CUDALibraries.open(["libcudnn.so.9"], options: options)
        let getVersion: @convention(c) () -> Int = try lib.function("cudnnGetVersion")
        return (lib, getVersion())
    }

    /// Loads cuDNN and creates a handle on `context`'s stream (no handle when `context` is nil). Throws when
    /// the library is missing, older than 9, or the handle cannot be created.
    init(context: CUDAContext?, options: RuntimeOptions = .current) throws {
        // cuDNN's engines open cuBLASLt and NVRTC by soname; loading ours first (from wherever they were
        // found) lets those lookups resolve to the already-loaded copies.
        if let context {
            _ = context.blasLt
            _ = context.kernels.nvrtc
        }
        let (lib, version) = try CUDNN.openLibrary(options: options)
        guard version >= 90000 else {
            throw KinemaError.unsupported("cuDNN \(CUDNN.versionText(version)) at \(lib.path) is older than 9.0")
        }
        library = lib
        self.version = version
        getErrorString = try lib.function("cudnnGetErrorString")
        getLastErrorString = lib.optionalFunction("cudnnGetLastErrorString")
        destroy = try lib.function("cudnnDestroy")
        backendCreate = try lib.function("cudnnBackendCreateDescriptor")
        backendDestroy = try lib.function("cudnnBackendDestroyDescriptor")
        backendSet = try lib.function("cudnnBackendSetAttribute")
        backendGet = try lib.function("cudnnBackendGetAttribute")
        backendFinalize = try lib.function("cudnnBackendFinalize")
        backendExecute = try lib.function("cudnnBackendExecute")
        legacy = try? LegacyConvolutionAPI(lib)
        let create: @convention(c) (UnsafeMutablePointer<Handle?>) -> Int32 = try lib.function("cudnnCreate")
        let setStream: @convention(c) (Handle?, CUhandle?) -> Int32 = try lib.function("cudnnSetStream")
        guard let context else { return }
        try context.makeCurrent()
        try check(create(&handle), "cudnnCreate")
        try check(setStream(handle, context.stream), "cudnnSetStream")
    }

    deinit { if handle != nil { _ = destroy(handle) } }

    static func versionText(_ version: Int) -> String {
        "\(version / 10000).\(version % 10000 / 100).\(version % 100)"
    }

    var versionText: String { CUDNN.versionText(version) }

    /// cuDNN's description of the most recent error on this thread (cudnnGetLastErrorString), if any.
    func lastErrorText() -> String {
        guard let getLastErrorString else { return "" }
        var buffer = [CChar](repeating: 0, count: 1024)
        getLastErrorString(&buffer, buffer.count)
        let text = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func statusText(_ status: Int32) -> String {
        getErrorString(status).map { String(cString: $0) } ?? "status \(status)"
    }

    /// Throws a `CUDNNError` naming the call, the status string and cuDNN's last error message.
    func check(_ status: Int32, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDNNError(call: call(), status: status, statusText: statusText(status), detail: lastErrorText())
    }
}

/// A failed cuDNN call. `status` 3000 (CUDNN_STATUS_NOT_SUPPORTED) and its sub-codes mean cuDNN has no
/// engine for the problem, not that something is broken.
struct CUDNNError: Error, CustomStringConvertible {
    var call: String
    var status: Int32
    var statusText: String
    var detail: String

    var description: String {
        "cuDNN \(call) failed: \(statusText) (\(status))" + (detail.isEmpty ? "" : ": \(detail)")
    }
}

extension CUDAContext {
    /// cuDNN's version and library path, or why it is unavailable (attention and convolutions then use
    /// Kinema's kernels).
    public var cudnnDescription: String {
        switch cudnn {
        case .success(let api): return "\(api.versionText) (\(api.library.path))"
        case .failure(let error): return "not available (attention and conv3d use Kinema's kernels): \(error)"
        }
    }

    /// Whether cuDNN loaded and has a handle on this context.
    public var cudnnAvailable: Bool {
        if case .success = cudnn { return true }
        return false
    }

    /// Writes `message` to standard error the first time `key` is seen in this process.
    func warnOnce(_ key: String, _ message: @autoclosure () -> String) {
        let first = warningLock.withLock { warnedKeys.insert(key).inserted }
        if first { FileHandle.standardError.write(Data("warning: \(message())\n".utf8)) }
    }
}

/// cuDNN's version and path without a GPU (for `kinema doctor` on machines without CUDA), or why not.
public func cudnnLibraryDescription(options: RuntimeOptions = .current) -> String {
    do {
        let (lib, version) = try CUDNN.openLibrary(options: options)
        return "\(CUDNN.versionText(version)) (\(lib.path))"
    } catch {
        return "cuDNN not found: \(error)"
    }
}
