import ArgumentParser

/// `iotd`: the reference daemon. Thin by design: arguments, configuration, a `ServiceGroup`.
@main
struct IoTD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iotd",
        abstract: "The IoT platform daemon.",
        subcommands: [Serve.self, Demo.self, Keys.self],
        defaultSubcommand: Serve.self)
}
