import IoTCore
import Testing

@Suite struct IoTErrorTests {
    /// Issue 18, item 6: an error with a native code names the table to look it up in.
    @Test func aNativeCodeIsPrintedWithItsDomain() {
        #expect(
            "\(IoTError(.storage, "disk I/O", nativeCode: 10, domain: .sqlite))" == "storage: disk I/O (SQLite code 10)"
        )
        #expect("\(IoTError(.journal, "full", nativeCode: 28, domain: .posix))" == "journal: full (errno 28)")
        #expect(
            "\(IoTError(.unavailable, "connect", nativeCode: 14, domain: .libmosquitto))"
                == "unavailable: connect (libmosquitto code 14)")
        #expect("\(IoTError(.timeout, "slow", nativeCode: 28, domain: .libcurl))" == "timeout: slow (libcurl code 28)")
        #expect("\(IoTError(.storage, "x"))" == "storage: x")
        // A domain without a code is dropped: there is nothing to look up.
        #expect(IoTError(.storage, "x", domain: .sqlite).nativeDomain == nil)
    }
}
