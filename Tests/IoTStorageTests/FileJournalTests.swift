import IoTCore
import Testing

@testable import IoTStorage

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh temporary directory, removed when the test ends.
final class JournalTempDirectory {
    let path: String
    init() {
        var template = Array("/tmp/iot-journal-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit { _ = system("rm -rf '\(path)'") }
}

@Suite struct FileJournalTests {
    func points(_ n: Int, base: Int64 = 0) -> [Point] {
        (0..<n).map { (i: Int) -> Point in
            let value: SignalValue
            if i % 5 == 0 {
                value = .text("t\(i)")
            } else if i % 7 == 0 {
                value = .bool(true)
            } else {
                value = .number(Double(i) * 0.5)
            }
            let signal = i % 2 == 0 ? "temp" : "state"
            return Point(device: "dev-\(i % 3)", signal: signal, time: base + Int64(i), value: value)
        }
    }

    @Test func appendReplayRoundTripAcrossReopen() throws {
        let dir = JournalTempDirectory()
        var written: [JournalEntry] = []
        do {
            let j = try FileJournal(configuration: .init(directory: dir.path))
            for i in 0..<50 {
                let p = points(i % 9 + 1, base: Int64(i) * 100)
                let seq = try j.append(tenant: i % 2 == 0 ? "a" : "b", points: p)
                written.append(JournalEntry(sequence: seq, tenant: i % 2 == 0 ? "a" : "b", points: p))
            }
            #expect(j.lastSequence == 50)
        }
        let j = try FileJournal(configuration: .init(directory: dir.path))
        #expect(j.lastSequence == 50)
        var replayed: [JournalEntry] = []
        try j.replay(after: 20) { replayed.append($0) }
        #expect(replayed == Array(written.dropFirst(20)))
        #expect(try j.append(tenant: "a", points: points(1)) == 51)
    }

    @Test func segmentsRollAndTrimDeletesWholeSegments() throws {
        let dir = JournalTempDirectory()
        let j = try FileJournal(configuration: .init(directory: dir.path, segmentBytes: 4096))
        for _ in 0..<200 { _ = try j.append(tenant: "a", points: points(5)) }
        let before = try segmentFiles(dir.path)
        #expect(before.count > 5)
        try j.trim(through: 150)
        let after = try segmentFiles(dir.path)
        #expect(after.count < before.count)
        var seqs: [UInt64] = []
        try j.replay(after: 0) { seqs.append($0.sequence) }
        #expect(seqs == Array(151...200))
        // Reopen: the trim point survives, replay starts after it.
        let k = try FileJournal(configuration: .init(directory: dir.path, segmentBytes: 4096))
        seqs = []
        try k.replay(after: 0) { seqs.append($0.sequence) }
        #expect(seqs == Array(151...200))
    }

    @Test func tornTailIsCutOffAndAppendsContinue() throws {
        let dir = JournalTempDirectory()
        let file = try tenRecordsClosed(dir)
        // Simulate a torn write: half a record at the end, then a corrupted byte in it.
        let fd = open(file, O_WRONLY | O_APPEND)
        let garbage: [UInt8] = [40, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]
        _ = garbage.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let j = try FileJournal(configuration: .init(directory: dir.path))
        #expect(j.lastSequence == 10)
        #expect(try j.append(tenant: "a", points: points(2)) == 11)
        var seqs: [UInt64] = []
        try j.replay(after: 0) { seqs.append($0.sequence) }
        #expect(seqs == Array(1...11))
    }

    @Test func corruptRecordEndsReplayThere() throws {
        let dir = JournalTempDirectory()
        let file = try tenRecordsClosed(dir)
        // Flip one byte inside the 6th record's payload.
        var st = stat()
        stat(file, &st)
        let recordSize = Int(st.st_size) / 10
        let fd = open(file, O_RDWR)
        var b: UInt8 = 0
        pread(fd, &b, 1, off_t(recordSize * 5 + 20))
        b ^= 0xFF
        pwrite(fd, &b, 1, off_t(recordSize * 5 + 20))
        close(fd)
        let j = try FileJournal(configuration: .init(directory: dir.path))
        #expect(j.lastSequence == 5)
    }

    @Test func trimBeyondLastAdvancesNumbering() throws {
        let dir = JournalTempDirectory()
        let j = try FileJournal(configuration: .init(directory: dir.path))
        try j.trim(through: 1000)
        #expect(try j.append(tenant: "a", points: points(1)) == 1001)
        let k = try FileJournal(configuration: .init(directory: dir.path))
        #expect(k.lastSequence == 1001)
    }

    /// Appends ten entries of three points to a new journal in `dir`, closes it, and returns its one segment file.
    func tenRecordsClosed(_ dir: JournalTempDirectory) throws -> String {
        do {
            let j = try FileJournal(configuration: .init(directory: dir.path))
            for _ in 0..<10 { _ = try j.append(tenant: "a", points: points(3)) }
        }
        return try segmentFiles(dir.path)[0]
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    @Test func aMappedSegmentGrowsInStepsAndLosesItsZerosOnClose() throws {
        let dir = JournalTempDirectory()
        var live = 0
        do {
            let j = try FileJournal(configuration: .init(directory: dir.path))
            for _ in 0..<10 { _ = try j.append(tenant: "a", points: points(3)) }
            // Room is allocated a step ahead of the records; the zeros are not records.
            live = fileSize(try segmentFiles(dir.path)[0])
            #expect(live == FileJournal.growthBytes)
            var seqs: [UInt64] = []
            try j.replay(after: 0) { seqs.append($0.sequence) }
            #expect(seqs == Array(1...10))
        }
        let closed = fileSize(try segmentFiles(dir.path)[0])
        #expect(closed > 0 && closed < live)
        let j = try FileJournal(configuration: .init(directory: dir.path))
        #expect(j.lastSequence == 10)
    }

    @Test func zerosLeftByACrashAreNotATornTail() throws {
        let dir = JournalTempDirectory()
        // A process killed while the segment was mapped leaves the allocated room after the records.
        let file = try tenRecordsClosed(dir)
        let size = fileSize(file)
        #expect(truncate(file, off_t(FileJournal.growthBytes)) == 0)
        let j = try FileJournal(configuration: .init(directory: dir.path))
        #expect(j.lastSequence == 10)
        #expect(fileSize(file) == size)
        #expect(try j.append(tenant: "a", points: points(2)) == 11)
        var seqs: [UInt64] = []
        try j.replay(after: 0) { seqs.append($0.sequence) }
        #expect(seqs == Array(1...11))
    }

    @Test(arguments: [FileJournal.Durability.process, .fsync])
    func anEntryLargerThanASegmentIsKept(durability: FileJournal.Durability) throws {
        let dir = JournalTempDirectory()
        var sizes: [Int] = []
        do {
            let j = try FileJournal(
                configuration: .init(directory: dir.path, durability: durability, segmentBytes: 4096))
            for n in [3, 600, 2, 600, 4] {
                _ = try j.append(tenant: "a", points: points(n))
                sizes.append(n)
            }
            var replayed: [Int] = []
            try j.replay(after: 0) { replayed.append($0.points.count) }
            #expect(replayed == sizes)
        }
        let j = try FileJournal(configuration: .init(directory: dir.path, durability: durability, segmentBytes: 4096))
        #expect(j.lastSequence == 5)
        var replayed: [Int] = []
        try j.replay(after: 0) { replayed.append($0.points.count) }
        #expect(replayed == sizes)
        #expect(try segmentFiles(dir.path).count >= 3)
    }

    @Test func crc32cMatchesKnownVector() {
        // RFC 3720 B.4: CRC-32C of "123456789" is 0xE3069283.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.softwareChecksum($0) } == 0xE306_9283)
    }

    @Test func crc32cInstructionAndTablesAgree() {
        // Every length from 0 to 300 (the instruction takes 8 bytes a step, then single bytes) at every
        // alignment of 0 to 7, on random bytes.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<310).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { all in
            for offset in 0..<8 {
                for count in 0...300 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[offset..<offset + count])
                    #expect(
                        CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice), "offset \(offset), \(count) bytes")
                }
            }
        }
        print("CRC-32C on the CPU's instruction: \(CRC32C.usesHardware)")
    }

    func segmentFiles(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if name.hasSuffix(".log") { names.append(dir + "/" + name) }
        }
        return names.sorted()
    }
}
