internal import CIoTLinux

#if canImport(Glibc)
    import Glibc
#endif

/// Starts a detached thread of its own (not one of Swift's cooperative pool) that names itself `name`
/// (`ps -L`, `perf`, `top -H`; the kernel keeps 15 bytes) and runs `body`. The transports' I/O threads,
/// blocking workers and pools all start this way.
///
/// - Returns: `pthread_create`'s error code: 0 when the thread runs, otherwise `body` never runs.
package func startDetachedThread(name: String, _ body: @escaping () -> Void) -> Int32 {
    let box = Unmanaged.passRetained(DetachedThreadBody(name: name, body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { arg in
            let body = Unmanaged<DetachedThreadBody>.fromOpaque(arg!).takeRetainedValue()
            body.name.withCString { ciot_name_this_thread($0) }
            body.run()
            return nil
        }, box)
    guard rc == 0 else {
        Unmanaged<DetachedThreadBody>.fromOpaque(box).release()
        return rc
    }
    pthread_detach(thread)
    return 0
}

/// What a detached thread runs, carried across `pthread_create` as an unmanaged reference.
private final class DetachedThreadBody {
    let name: String
    let run: () -> Void

    init(name: String, _ run: @escaping () -> Void) {
        self.name = name
        self.run = run
    }
}
