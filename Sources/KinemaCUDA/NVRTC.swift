import Foundation
import KinemaCore

// NVRTC, resolved at run time: compiles CUDA C++ kernel sources (kept in Swift string literals) to cubin
// for the device's architecture. Kernels are self-contained: no CUDA headers are needed, bf16/f16 are
// converted with PTX `cvt` instructions.

struct NVRTCAPI: @unchecked Sendable {
    typealias Program = OpaquePointer
    let library: LoadedLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    let nvrtcCompileProgram: @convention(c) (Program?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>) -> Int32
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    init(options: RuntimeOptions = .current) throws {
        let lib = try CUDALibraries.open(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], options: options)
        library = lib
        nvrtcVersion = try lib.function("nvrtcVersion")
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
    }

    var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        return "\(major).\(minor)"
    }

    /// Compiles `source` to a cubin. The error carries the full compile log.
    func compile(source: String, name: String, options: [String]) throws -> [UInt8] {
        var program: Program?
        var result = nvrtcCreateProgram(&program, source, name, 0, nil, nil)
        guard result == 0 else { throw KinemaError.unsupported("nvrtcCreateProgram(\(name)): \(errorText(result))") }
        defer { _ = nvrtcDestroyProgram(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        result = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            nvrtcCompileProgram(program, Int32(buffer.count), buffer.baseAddress)
        }
        if result != 0 {
            throw KinemaError.unsupported(
                "NVRTC could not compile kernel \(name) (\(options.joined(separator: " "))): \(errorText(result))\n\(log(program))")
        }
        var size = 0
        guard nvrtcGetCUBINSize(program, &size) == 0, size > 0 else {
            throw KinemaError.unsupported("NVRTC produced no cubin for \(name)")
        }
        var cubin = [UInt8](repeating: 0, count: size)
        let status = cubin.withUnsafeMutableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return -1 }
            return nvrtcGetCUBIN(program, base.assumingMemoryBound(to: CChar.self))
        }
        guard status == 0 else { throw KinemaError.unsupported("nvrtcGetCUBIN(\(name)): \(errorText(status))") }
        return cubin
    }

    private func log(_ program: Program?) -> String {
        var size = 0
        guard nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "(empty log)" }
        var buffer = [CChar](repeating: 0, count: size)
        _ = nvrtcGetProgramLog(program, &buffer)
        // The log is NUL-terminated within `size` bytes: decode up to the terminator.
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func errorText(_ code: Int32) -> String {
        nvrtcGetErrorString(code).map { String(cString: $0) } ?? "NVRTC error \(code)"
    }
}
