import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for a test: a new cluster (`initdb`) in a temporary directory, started on a free
/// loopback port with `pg_ctl` and stopped by its own PID (read from `postmaster.pid`) when the value is
/// released or by ``stop()``.
///
/// PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (Debian's package
/// creates it), and `initdb` and `pg_ctl` run as that user through `setpriv`.
/// Connect as `iot` (a superuser, trust authentication on loopback) to the database `postgres`.
///
/// ```swift
/// let pg = try PostgresServer()
/// let url = pg.url   // postgres://iot@127.0.0.1:PORT/postgres
/// ```
public final class PostgresServer: @unchecked Sendable {
    /// The server could not be set up or did not start.
    public struct Failure: Error, CustomStringConvertible {
        /// Why.
        public var description: String
    }

    /// The port it listens on (127.0.0.1).
    public let port: Int
    /// The cluster's directory.
    public let directory: TemporaryDirectory
    private var pid: pid_t?

    /// `postgres://iot@127.0.0.1:PORT/postgres`.
    public var url: String { "postgres://iot@127.0.0.1:\(port)/postgres" }

    /// The directory of PostgreSQL's programs (`initdb`, `postgres`): the newest `/usr/lib/postgresql/N/bin`.
    public static func binDirectory() -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).max().map { "/usr/lib/postgresql/\($0)/bin" }
    }

    /// Makes the cluster and starts the server; waits until it accepts connections.
    public init(seconds: Double = 60) throws {
        guard let bin = Self.binDirectory() else {
            throw Failure(
                description: "PostgreSQL is not installed (no /usr/lib/postgresql/N/bin); apt-get install postgresql")
        }
        directory = TemporaryDirectory("iot-pg")
        let data = directory.path + "/data"
        var asUser: [String] = []
        if getuid() == 0 {
            guard let pw = getpwnam("postgres") else {
                throw Failure(
                    description: "no 'postgres' user to run PostgreSQL as (root cannot); apt-get install postgresql")
            }
            chown(directory.path, pw.pointee.pw_uid, pw.pointee.pw_gid)
            asUser = [
                "/usr/bin/setpriv", "--reuid=\(pw.pointee.pw_uid)", "--regid=\(pw.pointee.pw_gid)", "--clear-groups",
                "--",
            ]
        }
        let initdb = try ChildProcess(
            asUser + [bin + "/initdb", "-D", data, "-U", "iot", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        while initdb.readLine(timeoutSeconds: seconds) != nil {}
        let status = initdb.wait(timeoutSeconds: seconds)
        guard status == 0 else { throw Failure(description: "initdb failed (wait status \(status))") }
        port = ChildProcess.freeLoopbackPort()
        // pg_ctl starts the server with its output in a log file (a server that outlived a crashed test must
        // not hold the test process's output pipe), waits until it accepts connections, and returns.
        let options = [
            "-p", String(port), "-k", directory.path, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
            "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
        ].joined(separator: " ")
        let ctl = try ChildProcess(
            asUser + [
                bin + "/pg_ctl", "-D", data, "-l", directory.path + "/server.log", "-o", options, "-w", "-t",
                String(Int(seconds)), "start",
            ])
        while ctl.readLine(timeoutSeconds: seconds) != nil {}
        let started = ctl.wait(timeoutSeconds: seconds + 5)
        let log = (try? String(contentsOfFile: directory.path + "/server.log", encoding: .utf8)) ?? ""
        guard started == 0, let pid = Self.serverPID(data) else {
            throw Failure(description: "PostgreSQL did not start on port \(port) (pg_ctl status \(started)): \(log)")
        }
        self.pid = pid
    }

    /// Stops the server by its PID (SIGINT: fast shutdown) and waits until it is gone; SIGKILL after 30 s.
    public func stop() {
        guard let pid, pid > 0 else { return }
        self.pid = nil
        kill(pid, SIGINT)
        let deadline = Date().addingTimeInterval(30)
        while kill(pid, 0) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                break
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// The postmaster's PID: line 1 of `postmaster.pid`.
    private static func serverPID(_ data: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first.flatMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }
}
