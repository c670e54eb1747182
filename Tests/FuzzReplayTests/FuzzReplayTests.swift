import Foundation
import IoTFuzzTargets
import Testing

/// Replays the committed fuzzing corpora and crash reproducers through their targets, unsanitized: an input
/// that once crashed a target, or that the fuzzer kept for the coverage it reached, must still be handled.
@Suite struct FuzzReplayTests {
    /// `Fuzz/` at the root of the package.
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    /// The files of `Fuzz/<folder>/<target>`, sorted; none when the folder does not exist.
    static func inputs(_ folder: String, _ target: FuzzTarget) -> [URL] {
        let directory = fuzzDirectory.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func corpusAndCrashesReplay(_ target: FuzzTarget) throws {
        let corpus = Self.inputs("Corpus", target)
        #expect(!corpus.isEmpty, "Fuzz/Corpus/\(target.rawValue) has no inputs")
        for file in corpus + Self.inputs("Crashes", target) {
            target.run(Array(try Data(contentsOf: file)))
        }
    }

    @Test func everyFolderNamesATarget() throws {
        for folder in ["Corpus", "Crashes"] {
            let path = Self.fuzzDirectory.appendingPathComponent(folder).path
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where !name.hasPrefix(".") {
                #expect(FuzzTarget(rawValue: name) != nil, "Fuzz/\(folder)/\(name) names no FuzzTarget")
            }
        }
    }
}
