import IoTCore
import IoTRules
import Testing

@Suite("Cron expressions")
struct CronTests {
    func next(_ expr: String, after: Int64, _ tz: CronTimeZone = .utc) throws -> Int64? {
        try CronExpression(expr).next(after: after, in: tz)
    }

    func fires(_ expr: String, after: Int64, count: Int, _ tz: CronTimeZone = .utc) throws -> [Int64] {
        let c = try CronExpression(expr)
        var out: [Int64] = []
        var t = after
        for _ in 0..<count {
            guard let n = c.next(after: t, in: tz) else { break }
            out.append(n)
            t = n
        }
        return out
    }

    @Test func stepsListsAndRanges() throws {
        #expect(try next("*/15 * * * *", after: utc(2024, 1, 1, 0, 7)) == utc(2024, 1, 1, 0, 15))
        #expect(try next("*/15 * * * *", after: utc(2024, 1, 1, 0, 15)) == utc(2024, 1, 1, 0, 30))
        #expect(
            try fires("10-30/5 * * * *", after: utc(2024, 1, 1, 0, 0), count: 6) == [
                utc(2024, 1, 1, 0, 10), utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 20), utc(2024, 1, 1, 0, 25),
                utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1, 10),
            ])
        #expect(
            try fires("0 9,17 * * *", after: utc(2024, 1, 1, 10), count: 3) == [
                utc(2024, 1, 1, 17), utc(2024, 1, 2, 9), utc(2024, 1, 2, 17),
            ])
        #expect(try next("5/20 * * * *", after: utc(2024, 1, 1, 0, 30)) == utc(2024, 1, 1, 0, 45))
        #expect(try next("0 0 1 * *", after: utc(2024, 12, 15)) == utc(2025, 1, 1))
        // A fire is strictly after `after`, on a whole second.
        #expect(try next("* * * * *", after: utc(2024, 1, 1, 0, 0, 0) + 1) == utc(2024, 1, 1, 0, 1))
    }

    /// A step of Int.max trapped on overflow in the field's loop (issue 17); it now means "the start only".
    @Test func hugeStepsDoNotOverflow() throws {
        #expect(try next("1/9223372036854775807 * * * *", after: utc(2024, 1, 1, 0, 7)) == utc(2024, 1, 1, 1, 1))
        #expect(try next("*/9223372036854775807 * * * *", after: utc(2024, 1, 1, 0, 7)) == utc(2024, 1, 1, 1, 0))
        #expect(throws: IoTError.self) { try CronExpression("1/9223372036854775808 * * * *") }
        #expect(throws: IoTError.self) { try CronExpression("1/-9223372036854775808 * * * *") }
    }

    @Test func monthAndDayNames() throws {
        // 2024-01-01 is a Monday.
        #expect(try next("0 0 * jan,JUL Mon-Fri", after: utc(2023, 12, 31)) == utc(2024, 1, 1))
        #expect(try next("0 0 * JUL MON-FRI", after: utc(2024, 1, 1)) == utc(2024, 7, 1))
        #expect(try next("0 0 * * SAT,SUN", after: utc(2024, 1, 1)) == utc(2024, 1, 6))
        // 0 and 7 are both Sunday.
        #expect(try next("0 0 * * 7", after: utc(2024, 1, 1)) == utc(2024, 1, 7))
        #expect(try next("0 0 * * 0", after: utc(2024, 1, 1)) == utc(2024, 1, 7))
        #expect(try next("0 0 * * 5-7", after: utc(2024, 1, 6, 1)) == utc(2024, 1, 7))
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothRestricted() throws {
        // The 13th, or any Friday (2024-01-05 and -12 are Fridays; the 13th is a Saturday).
        #expect(
            try fires("0 0 13 * FRI", after: utc(2024, 1, 1), count: 4) == [
                utc(2024, 1, 5), utc(2024, 1, 12), utc(2024, 1, 13), utc(2024, 1, 19),
            ])
        // With one side '*', both must match (the '*' side matches everything): only Fridays.
        #expect(try fires("0 0 * * FRI", after: utc(2024, 1, 1), count: 2) == [utc(2024, 1, 5), utc(2024, 1, 12)])
        // A stepped star still counts as '*' (Vixie): the 1st, 3rd, … that are also Mondays.
        #expect(try next("0 0 */2 * MON", after: utc(2024, 1, 1)) == utc(2024, 1, 15))
    }

    @Test func monthEnds() throws {
        #expect(try next("0 0 31 * *", after: utc(2024, 1, 31)) == utc(2024, 3, 31))
        #expect(try fires("0 0 31 * *", after: utc(2024, 3, 31), count: 2) == [utc(2024, 5, 31), utc(2024, 7, 31)])
        #expect(try next("0 0 30 * *", after: utc(2024, 1, 30)) == utc(2024, 3, 30))
        #expect(try next("59 23 31 12 *", after: utc(2024, 6, 1)) == utc(2024, 12, 31, 23, 59))
        #expect(try next("0 0 * * *", after: utc(2024, 12, 31, 12)) == utc(2025, 1, 1))
    }

    @Test func leapDay() throws {
        #expect(try next("0 0 29 2 *", after: utc(2023, 1, 1)) == utc(2024, 2, 29))
        #expect(try next("0 0 29 2 *", after: utc(2024, 3, 1)) == utc(2028, 2, 29))
        // 2100 is not a leap year: eight years between leap days.
        #expect(try next("0 0 29 2 *", after: utc(2096, 3, 1)) == utc(2104, 2, 29))
        #expect(try next("0 12 28 2 *", after: utc(2023, 2, 28, 12)) == utc(2024, 2, 28, 12))
        // Never: February 30.
        #expect(try next("0 0 30 2 *", after: utc(2024, 1, 1)) == nil)
    }

    @Test func sixFieldsWithSeconds() throws {
        #expect(try next("*/10 * * * * *", after: utc(2024, 1, 1, 0, 0, 5)) == utc(2024, 1, 1, 0, 0, 10))
        #expect(try next("30 0 12 * * *", after: utc(2024, 1, 1)) == utc(2024, 1, 1, 12, 0, 30))
        #expect(
            try fires("0,30 * * * * *", after: utc(2024, 1, 1, 0, 0, 0), count: 3) == [
                utc(2024, 1, 1, 0, 0, 30), utc(2024, 1, 1, 0, 1, 0), utc(2024, 1, 1, 0, 1, 30),
            ])
        #expect(try next("0 0 9-17 * * MON-FRI", after: utc(2024, 1, 5, 17, 30)) == utc(2024, 1, 8, 9))
    }

    @Test(arguments: [
        "61 * * * *", "* * *", "* * * * * * *", "5-1 * * * *", "*/0 * * * *", "0 0 * FOO *",
        "0 0 32 * *", "0 24 * * *", "1,,2 * * * *", "0 0 * * 8", "a b c d e",
    ])
    func invalidExpressionsThrow(_ expr: String) {
        #expect(throws: IoTError.self) { try CronExpression(expr) }
    }

    // Europe/Berlin: 2024-03-31 02:00 CET → 03:00 CEST at 01:00 UTC; 2024-10-27 03:00 CEST → 02:00 CET at 01:00 UTC.
    let berlin = CronTimeZone(identifier: "Europe/Berlin")!
    // America/New_York: 2024-03-10 02:00 EST → 03:00 EDT at 07:00 UTC; 2024-11-03 02:00 EDT → 01:00 EST at 06:00 UTC.
    let newYork = CronTimeZone(identifier: "America/New_York")!

    @Test func berlinSpringForward() throws {
        // 02:30 does not exist on the 31st: runs once, at the end of the gap (03:00 CEST = 01:00 UTC).
        #expect(
            try fires("30 2 * * *", after: utc(2024, 3, 30, 12), count: 2, berlin) == [
                utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30),
            ])
        // Every 30 min: 01:30 CET, then 02:00 and 02:30 collapse into 03:00 CEST, then 03:30 CEST.
        #expect(
            try fires("*/30 * * * *", after: utc(2024, 3, 31, 0, 15), count: 3, berlin) == [
                utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1, 0), utc(2024, 3, 31, 1, 30),
            ])
        #expect(try next("0 9 * * *", after: utc(2024, 3, 30, 12), berlin) == utc(2024, 3, 31, 7))
    }

    @Test func berlinFallBack() throws {
        // 02:30 happens twice on the 27th: a fixed-hour schedule runs at the first (CEST) only.
        #expect(
            try fires("30 2 * * *", after: utc(2024, 10, 26, 12), count: 2, berlin) == [
                utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30),
            ])
        // An hourly schedule ('*' hours) runs by elapsed time: 02:00 CEST, 02:00 CET, 03:00 CET.
        #expect(
            try fires("0 * * * *", after: utc(2024, 10, 26, 23, 30), count: 3, berlin) == [
                utc(2024, 10, 27, 0), utc(2024, 10, 27, 1), utc(2024, 10, 27, 2),
            ])
        #expect(try next("0 9 * * *", after: utc(2024, 10, 26, 12), berlin) == utc(2024, 10, 27, 8))
    }

    @Test func newYorkSpringForward() throws {
        #expect(
            try fires("30 2 * * *", after: utc(2024, 3, 9, 12), count: 2, newYork) == [
                utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30),
            ])
        #expect(try next("0 12 * * *", after: utc(2024, 3, 10, 12), newYork) == utc(2024, 3, 10, 16))
    }

    @Test func newYorkFallBack() throws {
        // 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST): once, at the first.
        #expect(
            try fires("30 1 * * *", after: utc(2024, 11, 2, 12), count: 2, newYork) == [
                utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30),
            ])
        #expect(
            try fires("30 * * * *", after: utc(2024, 11, 3, 5), count: 3, newYork) == [
                utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7, 30),
            ])
    }

    @Test func fixedOffsetZone() throws {
        let india = CronTimeZone(offsetSeconds: 19_800)
        #expect(india.identifier == "UTC+05:30")
        #expect(try next("0 9 * * *", after: utc(2024, 1, 1), india) == utc(2024, 1, 1, 3, 30))
        #expect(CronTimeZone(identifier: "Not/AZone") == nil)
    }
}
