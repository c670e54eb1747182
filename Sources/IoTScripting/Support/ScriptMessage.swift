/// Rewrites interpreter error messages into the SDK's form: the script's message, then `(line N)`.
enum ScriptMessage {
    /// `chunk:12: attempt to …` → `attempt to … (line 12)`; other messages unchanged.
    static func lua(_ message: String, chunk: String) -> String {
        let prefix = chunk + ":"
        guard message.hasPrefix(prefix) else { return message }
        let rest = message.dropFirst(prefix.count)
        let digits = rest.prefix(while: \.isNumber)
        guard !digits.isEmpty, rest.dropFirst(digits.count).hasPrefix(": ") else { return message }
        return "\(rest.dropFirst(digits.count + 2)) (line \(digits))"
    }
}
