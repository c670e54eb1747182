// The libFuzzer entry point for every target of IoTFuzzTargets. Not a SwiftPM target: scripts/fuzz.sh compiles
// it with `swiftc -sanitize=fuzzer,address -parse-as-library` against the sanitized build of the package and
// runs it with IOT_FUZZ_TARGET naming the target (a FuzzTarget raw value).
import IoTFuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// The target named by IOT_FUZZ_TARGET, resolved on the first input.
let selectedTarget: FuzzTarget = {
    let name = getenv("IOT_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        fputs("IOT_FUZZ_TARGET must be one of: \(names)\n", stderr)
        exit(2)
    }
    return target
}()

/// libFuzzer calls this once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedTarget.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
