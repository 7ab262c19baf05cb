import Foundation
import KinemaCore

#if canImport(Glibc)
import Glibc
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { Glibc.write(fd, buffer, count) }
#elseif canImport(Darwin)
import Darwin
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { Darwin.write(fd, buffer, count) }
#endif

/// H.264 MP4 through an external `ffmpeg` (found on PATH, or at an explicit path). Kinema links no video
/// codec; raw RGB frames are piped to ffmpeg's stdin:
///
///     ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -framerate FPS -i - \
///            -vf pad=ceil(iw/2)*2:ceil(ih/2)*2 -c:v libx264 -pix_fmt yuv420p -crf CRF -movflags +faststart OUT
///
/// The pad filter makes odd sizes legal for 4:2:0 (one black column/row added). ffmpeg converts RGB to
/// limited-range BT.601 Y'CbCr, its default for untagged RGB input.
public enum FFmpegWriter {
    /// Locates ffmpeg: `explicit` when given (must be executable), else the first `ffmpeg` on PATH.
    public static func locate(explicit: String? = nil, searchPath: [String] = RuntimeOptions.current.executableSearchPath) throws -> String {
        let manager = FileManager.default
        if let explicit {
            guard manager.isExecutableFile(atPath: explicit) else {
                throw KinemaError.missingLibrary(name: "ffmpeg (needed for .mp4 output)", searched: [explicit])
            }
            return explicit
        }
        let candidates = searchPath.map { ($0 as NSString).appendingPathComponent("ffmpeg") }
        guard let found = candidates.first(where: { manager.isExecutableFile(atPath: $0) }) else {
            throw KinemaError.missingLibrary(
                name: "ffmpeg (needed for .mp4 output; install it or write .y4m / .gif / .apng / .png instead)",
                searched: candidates.isEmpty ? ["PATH is empty"] : candidates)
        }
        return found
    }

    public static func write(_ video: RGBVideo, to path: String, fps: Int, crf: Int = 18, ffmpeg: String? = nil) throws {
        guard fps >= 1 else { throw KinemaError.invalidArgument("MP4 frame rate must be positive, got \(fps)") }
        guard (0...51).contains(crf) else { throw KinemaError.invalidArgument("x264 CRF must be 0...51, got \(crf)") }
        let executable = try locate(explicit: ffmpeg)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(video.width)x\(video.height)", "-framerate", "\(fps)",
            "-i", "pipe:0",
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "\(crf)",
            "-movflags", "+faststart", path,
        ]
        // -nostdin only stops ffmpeg's interactive keyboard handling; "pipe:0" still reads the frames.
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        // ffmpeg's messages go to a file, so a chatty ffmpeg can never block on a full stderr pipe.
        let logPath = (NSTemporaryDirectory() as NSString).appendingPathComponent("kinema-ffmpeg-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: logPath, contents: nil), let log = FileHandle(forWritingAtPath: logPath) else {
            throw KinemaError.io(path: logPath, reason: "cannot create ffmpeg log file")
        }
        defer {
            try? log.close()
            try? FileManager.default.removeItem(atPath: logPath)
        }
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw KinemaError.io(path: executable, reason: "cannot start ffmpeg: \(error)")
        }
        let descriptor = input.fileHandleForWriting.fileDescriptor
        let writeError = writeIgnoringBrokenPipe(video.frames, to: descriptor)
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        let message = (try? String(contentsOfFile: logPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw KinemaError.io(
                path: path,
                reason: "ffmpeg (\(executable)) failed with status \(process.terminationStatus)"
                    + (message.isEmpty ? "" : ": \(message)"))
        }
        if let writeError {
            throw KinemaError.io(path: path, reason: "writing frames to ffmpeg failed: \(writeError)")
        }
    }

    /// Writes every frame to a pipe. If ffmpeg exits early the write fails with EPIPE; SIGPIPE (which
    /// would kill the whole process) is blocked on this thread for the duration, and a pending one is
    /// consumed before the mask is restored. Returns a description of the first error, or nil.
    static func writeIgnoringBrokenPipe(_ frames: [[UInt8]], to descriptor: Int32) -> String? {
        #if canImport(Glibc)
        var blocked = sigset_t()
        var previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer {
            var pending = sigset_t()
            sigpending(&pending)
            if sigismember(&pending, SIGPIPE) == 1 {
                var zero = timespec(tv_sec: 0, tv_nsec: 0)
                _ = sigtimedwait(&blocked, nil, &zero)
            }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }
        #elseif canImport(Darwin)
        _ = fcntl(descriptor, F_SETNOSIGPIPE, 1)
        #endif
        for frame in frames {
            var failure: String?
            frame.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let written = systemWrite(descriptor, base + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        failure = String(cString: strerror(errno))
                        return
                    }
                    offset += written
                }
            }
            if let failure { return failure }
        }
        return nil
    }
}
