import ArgumentParser
import Foundation
import IoTPlatform

/// `iotd`: the reference daemon. Thin by design: arguments, configuration, a `ServiceGroup`.
@main
struct IoTD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iotd",
        abstract: "The IoT platform daemon.",
        version: IoTPlatform.version,
        subcommands: [Serve.self, Demo.self, Keys.self, Backup.self, Restore.self],
        defaultSubcommand: Serve.self)
}

/// The configuration file at `path`, or exit 78 (`EX_CONFIG`, as systemd and sysexits name it) after printing
/// what is wrong with it.
func loadConfiguration(_ path: String) throws -> (PlatformConfiguration, [String]) {
    do {
        return try PlatformConfiguration.load(path: path)
    } catch {
        FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
        throw ExitCode(78)
    }
}
