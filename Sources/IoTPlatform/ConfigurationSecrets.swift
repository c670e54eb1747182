import Foundation
import Yams

/// Secrets in `iotd.yaml` may stand in files or environment variables instead of the file itself.
///
/// In any mapping, for a secret key `K` (``names``: `adminAPIKey`, `password`, `secret`, `appSecret`, `key`,
/// `token`), `KFile: /path` reads the file (trailing white space dropped) and `KEnv: NAME` reads the variable,
/// as if `K` had been written with that value. Under `keys:` (DTLS pre-shared keys) and `headers:` (a
/// notification channel's HTTP headers), a value may be `{file: /path}` or `{env: NAME}`. `iotd serve --check`
/// lists every secret still written inline.
enum ConfigurationSecrets {
    /// The keys whose values are secrets.
    static let names: Set<String> = ["adminAPIKey", "password", "secret", "appSecret", "key", "token"]
    /// Mappings whose values are secrets: DTLS keys by identity, HTTP headers of a channel.
    static let secretMaps: Set<String> = ["keys", "headers"]

    /// The configuration with every `…File`/`…Env` secret read, and a warning for each secret written inline.
    static func resolve(_ node: Node, environment: [String: String]) throws -> (node: Node, inline: [String]) {
        var inline: [String] = []
        let resolved = try resolve(node, at: "", environment: environment, inline: &inline)
        return (resolved, inline)
    }

    private static func resolve(_ node: Node, at path: String, environment: [String: String], inline: inout [String])
        throws -> Node
    {
        switch node {
        case .mapping(let mapping):
            var pairs: [(Node, Node)] = []
            for (keyNode, value) in mapping {
                guard let key = keyNode.string else {
                    pairs.append((keyNode, value))
                    continue
                }
                let at = path.isEmpty ? key : path + "." + key
                if let base = secretBase(of: key, suffix: "File") {
                    pairs.append((Node(base), Node(try readFile(value, at: at))))
                } else if let base = secretBase(of: key, suffix: "Env") {
                    pairs.append((Node(base), Node(try readEnvironment(value, at: at, environment: environment))))
                } else if names.contains(key), let text = value.scalar?.string, !text.isEmpty {
                    inline.append(at)
                    pairs.append((keyNode, value))
                } else if secretMaps.contains(key), case .mapping(let entries) = value {
                    var resolvedEntries: [(Node, Node)] = []
                    for (entryKey, entryValue) in entries {
                        let entryAt = at + "." + (entryKey.string ?? "?")
                        if let reference = entryValue.mapping, reference.count == 1,
                            let file = reference["file"]
                        {
                            resolvedEntries.append((entryKey, Node(try readFile(file, at: entryAt + ".file"))))
                        } else if let reference = entryValue.mapping, reference.count == 1,
                            let variable = reference["env"]
                        {
                            resolvedEntries.append(
                                (
                                    entryKey,
                                    Node(try readEnvironment(variable, at: entryAt + ".env", environment: environment))
                                ))
                        } else {
                            if key == "keys" || entryKey.string?.lowercased() == "authorization" {
                                inline.append(entryAt)
                            }
                            resolvedEntries.append((entryKey, entryValue))
                        }
                    }
                    pairs.append((keyNode, Node(resolvedEntries)))
                } else {
                    pairs.append((keyNode, try resolve(value, at: at, environment: environment, inline: &inline)))
                }
            }
            return Node(pairs)
        case .sequence(let sequence):
            return Node(
                try sequence.enumerated().map { i, item in
                    try resolve(item, at: "\(path)[\(i)]", environment: environment, inline: &inline)
                })
        default:
            return node
        }
    }

    /// `password` for `passwordFile` and a suffix `File`, when `password` is a secret key.
    private static func secretBase(of key: String, suffix: String) -> String? {
        guard key.hasSuffix(suffix) else { return nil }
        let base = String(key.dropLast(suffix.count))
        return names.contains(base) ? base : nil
    }

    private static func readFile(_ value: Node, at: String) throws -> String {
        guard let path = value.string, !path.isEmpty else { throw ConfigurationError("\(at): give the path of a file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(at): cannot read \(path); check the path and that iotd may read it")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ConfigurationError("\(at): \(path) is empty") }
        return text
    }

    private static func readEnvironment(_ value: Node, at: String, environment: [String: String]) throws -> String {
        guard let name = value.string, !name.isEmpty else {
            throw ConfigurationError("\(at): give the name of an environment variable")
        }
        guard let text = environment[name], !text.isEmpty else {
            throw ConfigurationError("\(at): the environment variable \(name) is not set or empty")
        }
        return text
    }
}
