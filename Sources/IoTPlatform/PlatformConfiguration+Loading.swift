public import Foundation
import IoTServer
import IoTYAML
import Yams

extension PlatformConfiguration {
    /// The placeholder admin key of `Examples/iotd.example.yaml`, refused as an admin key.
    public static let exampleAdminKey = "change-me-to-a-long-random-string"
    /// The shortest admin key accepted.
    public static let minimumAdminKeyLength = 32

    /// Reads a configuration file as `iotd` does: YAML, secrets resolved (``ConfigurationSecrets``: `KFile`,
    /// `KEnv`, `{file: …}`, `{env: …}`), every key checked (an unknown one is an error naming it), the admin
    /// key taken from `IOTD_ADMIN_API_KEY` when that is set, then ``validate()``.
    ///
    /// ```swift
    /// let (configuration, inline) = try PlatformConfiguration.load(path: "/etc/iotd.yaml")
    /// for key in inline { logger.warning("secret written inline", metadata: ["key": "\(key)"]) }
    /// ```
    ///
    /// - Returns: the configuration, and the keys of the secrets written inline in the file.
    /// - Throws: ``ConfigurationError`` starting with the path and naming the key.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (configuration: PlatformConfiguration, inlineSecrets: [String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                "cannot read \(path): check the path (see Examples/iotd.example.yaml for a template)")
        }
        do {
            return try decode(yaml: String(decoding: data, as: UTF8.self), environment: environment)
        } catch let error as ConfigurationError {
            throw ConfigurationError("\(path): \(error.description)")
        }
    }

    /// Reads a configuration from YAML text, as ``load(path:environment:)`` reads a file.
    ///
    /// ```swift
    /// let configuration = try PlatformConfiguration(yaml: """
    ///     dataDirectory: /tmp/iot
    ///     http: { port: 0 }
    ///     tenants: [{ id: lab }]
    ///     """)
    /// ```
    ///
    /// - Throws: ``ConfigurationError`` naming the key.
    public init(yaml: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self = try Self.decode(yaml: yaml, environment: environment).configuration
    }

    private static func decode(yaml: String, environment: [String: String]) throws -> (
        configuration: PlatformConfiguration, inlineSecrets: [String]
    ) {
        var configuration: PlatformConfiguration
        let inline: [String]
        do {
            let node = try Yams.compose(yaml: yaml) ?? Node([(Node, Node)]())
            let resolved = try ConfigurationSecrets.resolve(node, environment: environment)
            inline = resolved.inline
            // Base-60 integers made harmless first: Yams traps on one that overflows (SafeYAML).
            configuration = try StrictYAMLDecoder.decode(
                PlatformConfiguration.self, from: SafeYAML.neutralizingBase60(resolved.node))
        } catch let error as ConfigurationError {
            throw error
        } catch let error as ConfigurationDecodingError {
            throw ConfigurationError(error.description)
        } catch {
            throw ConfigurationError("not a valid configuration: \(error)")
        }
        try configuration.resolveAdminKey(environment: environment)
        try configuration.validate()
        return (configuration, inline)
    }

    /// The admin key: `IOTD_ADMIN_API_KEY`, else `management.adminAPIKey`. A key shorter than
    /// ``minimumAdminKeyLength`` or equal to ``exampleAdminKey`` is refused.
    mutating func resolveAdminKey(environment: [String: String]) throws {
        let source: String
        if let fromEnvironment = environment["IOTD_ADMIN_API_KEY"], !fromEnvironment.isEmpty {
            management.adminAPIKey = fromEnvironment
            source = "IOTD_ADMIN_API_KEY"
        } else {
            source = "management.adminAPIKey"
        }
        guard let key = management.adminAPIKey else { return }
        if key == Self.exampleAdminKey {
            throw ConfigurationError(
                "\(source) is the example's placeholder; generate a key, e.g. openssl rand -base64 32, and keep it in adminAPIKeyFile"
            )
        }
        if key.count < Self.minimumAdminKeyLength {
            throw ConfigurationError(
                "\(source) has \(key.count) characters; use at least \(Self.minimumAdminKeyLength), e.g. openssl rand -base64 32"
            )
        }
    }
}
