public import Yams

/// Reads YAML into a node that Yams' `YAMLDecoder` decodes without trapping.
///
/// Yams reads a plain scalar such as `1:30` as a YAML 1.1 base-60 (sexagesimal) integer when an integer is
/// decoded from it, with unchecked arithmetic: `port: -3333333333333333333:3`, or eleven `:`-separated
/// parts, overflow and stop the process (found by the `configuration` fuzz target; Yams 6.2.2). These
/// scalars are read as quoted strings here: a string setting keeps its text (`"12:30"`), and a number
/// setting written in base 60 is refused by the decoder with a type mismatch, as YAML 1.2 (which dropped
/// base 60) would have it.
///
/// ```swift
/// let node = try SafeYAML.compose(text) ?? Node([(Node, Node)]())
/// let configuration = try YAMLDecoder().decode(DaemonConfiguration.self, from: node)
/// ```
public enum SafeYAML {
    /// `Yams.compose(yaml:)`, then ``neutralizingBase60(_:)``.
    ///
    /// - Throws: Yams' error for text that is not YAML.
    public static func compose(_ text: String) throws -> Node? {
        try Yams.compose(yaml: text).map(neutralizingBase60)
    }

    /// `node` with every plain scalar that Yams would read as a base-60 integer turned into a quoted string.
    public static func neutralizingBase60(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            guard isBase60Integer(scalar) else { return node }
            scalar.style = .doubleQuoted
            return .scalar(scalar)
        case .mapping(let mapping):
            return .mapping(
                Node.Mapping(
                    mapping.map { (neutralizingBase60($0.key), neutralizingBase60($0.value)) }, mapping.tag,
                    mapping.style, mapping.mark))
        case .sequence(let sequence):
            return .sequence(
                Node.Sequence(sequence.map(neutralizingBase60), sequence.tag, sequence.style, sequence.mark))
        case .alias:
            return node
        }
    }

    /// Whether Yams' integer construction would take its base-60 path for `scalar` (the checks of its
    /// `FixedWidthInteger` construction, in its order): a plain scalar holding `:`, without a `0`, `0x`,
    /// `0b` or `0o` prefix after the sign, whose `:`-separated parts are all integers.
    static func isBase60Integer(_ scalar: Node.Scalar) -> Bool {
        guard scalar.style == .any || scalar.style == .plain, scalar.string.contains(":") else { return false }
        var text = Substring(scalar.string.filter { $0 != "_" })
        if text.first == "-" || text.first == "+" { text = text.dropFirst() }
        if text.hasPrefix("0") { return false }
        return text.split(separator: ":", omittingEmptySubsequences: false).allSatisfy { Int($0) != nil }
    }
}
