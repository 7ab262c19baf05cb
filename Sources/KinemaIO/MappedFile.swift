import Foundation
import KinemaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A whole file mapped into memory. Tensors read from a checkpoint borrow this mapping (their Storage
// retains it), so the mapping lives exactly as long as the last tensor or reader that uses it.
//
// The mapping is MAP_PRIVATE with PROT_READ | PROT_WRITE: a stray write through a tensor's pointer
// copies that page privately instead of faulting, and never reaches the file. Pages are read from disk
// on first touch, so mapping a 30 GB checkpoint costs nothing until tensors are used. If the kernel
// refuses a writable private mapping (strict overcommit accounting charges it in full), we fall back to
// a read-only mapping; writes then fault, but reading works.
//
// Hazard we cannot guard against: another process truncating the file while it is mapped makes the
// missing pages raise SIGBUS on access. Headers are validated against the size seen at open time.

final class MappedFile: @unchecked Sendable {
    let path: String
    /// Start of the mapping. Valid for `length` bytes while this object lives.
    let base: UnsafeMutableRawPointer
    let length: Int

    init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw KinemaError.io(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw KinemaError.io(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw KinemaError.badFile(path: path, location: nil, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else {
            // mmap cannot map zero bytes; an empty file is malformed for every format we map.
            throw KinemaError.badFile(path: path, location: nil, reason: "file is empty (0 bytes)")
        }
        var mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, descriptor, 0)
        if Int(bitPattern: mapped) == -1 && errno == ENOMEM {
            mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        }
        guard let mapped, Int(bitPattern: mapped) != -1 else {
            throw KinemaError.io(path: path, reason: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.base = mapped
        self.length = size
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }

    deinit { munmap(base, length) }
}
