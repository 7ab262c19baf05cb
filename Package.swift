// swift-tools-version:6.1
// Kinema: Wan-family video diffusion inference in Swift.
// Layers import downward only: CKinema → KinemaCore → KinemaCPU / KinemaCUDA → KinemaNN → KinemaIO →
// KinemaModels → KinemaPipeline → kinema (CLI). The README's "How it is built" describes each target.
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
// Numeric kernels are compiled optimized even in debug builds: `swift test` runs real model forwards,
// and unoptimized Swift loops are 50–100× slower.
// Kernel code shares raw pointers across worker threads by design, which Swift 6's data-race checking
// cannot express; those targets use the Swift 5 language mode.
let kernels: [SwiftSetting] = strict + [
    .unsafeFlags(["-O", "-enforce-exclusivity=unchecked"]),
    .swiftLanguageMode(.v5),
]
// Codecs (image decoders, GIF/PNG encoders, safetensors and tokenizer parsing) loop over every byte or
// pixel: optimized in debug builds too (the README's `swift run` writes a GIF), keeping Swift 6 checks.
let codecs: [SwiftSetting] = strict + [.unsafeFlags(["-O"])]
// GEMM micro-kernels for wider x86 vector units live in their own modules, compiled for a named CPU; KinemaCPU
// picks one at run time from CPUID (Sources/CKinema/cpu.c), so the binary still runs on baseline x86-64.
// On other architectures these modules compile to nothing.
#if arch(x86_64)
let haswellKernels: [SwiftSetting] = kernels + [.unsafeFlags(["-target-cpu", "haswell"])]
let avx512Kernels: [SwiftSetting] = kernels + [.unsafeFlags(["-target-cpu", "skylake-avx512"])]
#else
let haswellKernels: [SwiftSetting] = kernels
let avx512Kernels: [SwiftSetting] = kernels
#endif

let package = Package(
    name: "Kinema",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kinema", targets: ["kinema"]),
        .executable(name: "kinema-gemm-bench", targets: ["kinema-gemm-bench"]),
        .library(name: "Kinema", targets: ["KinemaPipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "CKinema", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "KinemaCore", dependencies: ["CKinema"], swiftSettings: kernels),
        .target(name: "KinemaVectorMath", swiftSettings: kernels),
        .target(name: "KinemaKernelsAVX2", dependencies: ["CKinema", "KinemaVectorMath"], swiftSettings: haswellKernels),
        .target(name: "KinemaKernelsAVX512", dependencies: ["CKinema", "KinemaVectorMath"], swiftSettings: avx512Kernels),
        .target(
            name: "KinemaCPU",
            dependencies: ["KinemaCore", "CKinema", "KinemaVectorMath", "KinemaKernelsAVX2", "KinemaKernelsAVX512"],
            swiftSettings: kernels),
        .target(name: "KinemaCUDA", dependencies: ["KinemaCore", "CKinema"], swiftSettings: strict),
        .target(name: "KinemaNN", dependencies: ["KinemaCore"], swiftSettings: strict),
        .target(name: "KinemaIO", dependencies: ["KinemaCore", "CKinema"], swiftSettings: codecs),
        .target(name: "KinemaModels", dependencies: ["KinemaCore", "KinemaNN", "KinemaIO"], swiftSettings: strict),
        .target(
            name: "KinemaPipeline",
            dependencies: ["KinemaCore", "KinemaCPU", "KinemaCUDA", "KinemaNN", "KinemaIO", "KinemaModels"],
            swiftSettings: strict),
        .executableTarget(
            name: "kinema",
            dependencies: [
                "KinemaPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(name: "kinema-gemm-bench", dependencies: ["KinemaCPU", "KinemaCore"], swiftSettings: kernels),
        .target(name: "KinemaTestSupport", dependencies: ["KinemaCore", "KinemaIO"], path: "Tests/KinemaTestSupport"),
        .testTarget(name: "KinemaCoreTests", dependencies: ["KinemaCore", "KinemaTestSupport"]),
        .testTarget(name: "KinemaCPUTests", dependencies: ["KinemaCPU", "KinemaVectorMath", "KinemaTestSupport"]),
        .testTarget(name: "KinemaIOTests", dependencies: ["KinemaIO", "CKinema", "KinemaTestSupport"]),
        .testTarget(name: "KinemaNNTests", dependencies: ["KinemaNN", "KinemaCPU", "KinemaTestSupport"]),
        .testTarget(
            name: "KinemaModelsTests",
            dependencies: ["KinemaModels", "KinemaCPU", "KinemaPipeline", "KinemaTestSupport"]),
        .testTarget(name: "KinemaCUDATests", dependencies: ["KinemaCUDA", "KinemaCore"]),
        .testTarget(name: "KinemaPipelineTests", dependencies: ["KinemaPipeline", "KinemaCPU", "KinemaTestSupport"]),
    ]
)
