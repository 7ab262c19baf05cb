import CKinema
import Foundation
import KinemaCore

// The CUDA driver API, resolved from libcuda.so.1 at run time. Only the calls Kinema makes are bound.

public typealias CUresult = Int32
public typealias CUdeviceptr = UInt64
public typealias CUhandle = OpaquePointer

struct CUDADriverAPI: @unchecked Sendable {
    let library: LoadedLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUhandle?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuStreamWaitEvent: @convention(c) (CUhandle?, CUhandle?, UInt32) -> CUresult
    let cuStreamDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (CUhandle?, CUhandle?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUhandle?, CUhandle?) -> CUresult
    let cuEventDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle?, UnsafePointer<CChar>) -> CUresult
    let cuLaunchKernel: @convention(c) (
        CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    init(options: RuntimeOptions = .current) throws {
        let lib = try CUDALibraries.open(["libcuda.so.1", "libcuda.so"], options: options)
        library = lib
        cuInit = try lib.function("cuInit")
        cuDriverGetVersion = try lib.function("cuDriverGetVersion")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemGetInfo = try lib.function("cuMemGetInfo_v2")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemAllocHost = try lib.function("cuMemAllocHost_v2")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try lib.function("cuMemsetD8Async")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuStreamWaitEvent = try lib.function("cuStreamWaitEvent")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventElapsedTime = try lib.function("cuEventElapsedTime_v2")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuFuncSetAttribute = try lib.function("cuFuncSetAttribute")
        cuGetErrorName = try lib.function("cuGetErrorName")
    }

    /// Throws a `KinemaError` naming the call and the CUDA error when `result` is not CUDA_SUCCESS.
    func check(_ result: CUresult, _ call: String) throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?
        _ = cuGetErrorName(result, &name)
        let text = name.map { String(cString: $0) } ?? "error \(result)"
        if result == 2 {  // CUDA_ERROR_OUT_OF_MEMORY
            throw KinemaError.outOfMemory(requestedBytes: 0, detail: "\(call): \(text)")
        }
        throw KinemaError.unsupported("CUDA \(call) failed: \(text) (\(result))")
    }
}
