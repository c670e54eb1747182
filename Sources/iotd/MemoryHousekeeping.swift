import CIoTLinux
import ServiceLifecycle

/// glibc's allocator tuned for a long-running server with many threads (NIO's event loops, the C libraries'
/// own threads, the ingest pipeline):
///
/// - ``limitArenas()`` keeps at most two allocation arenas. glibc's default, eight per core, lets every thread
///   that ever allocated keep an arena of its own with its free memory in it: under a burst the heap spreads
///   over them and the resident size grows far past what is in use.
/// - ``limitArenas()`` also fixes the size from which a block gets its own mapping at 128 KiB. glibc raises that
///   size each time such a block is freed (up to 32 MiB), after which large transient arrays (the points of a
///   store transaction, for one) come from the heap and leave holes there under a burst: with a fixed size they
///   are mapped and unmapped, and never stay resident (`iot-bench fleet`'s peak under a 10× overload: 176–183 →
///   155 MB).
/// - ``run()`` gives free memory back to the operating system every ten seconds (`malloc_trim`): after a burst
///   the heap otherwise stays at its peak, since glibc returns only the free top of each arena.
struct MemoryHousekeeping: Service {
    /// Seconds between two trims.
    var intervalSeconds = 10

    /// Two arenas at most, and a fixed mapping size; call it first, before threads start.
    static func limitArenas() {
        _ = mallopt(M_ARENA_MAX, 2)
        _ = mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(intervalSeconds)) }
            } catch {
                return
            }
            _ = malloc_trim(0)
        }
    }
}
