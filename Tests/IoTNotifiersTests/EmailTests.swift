import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Testing

/// Email received by a real SMTP server (aiosmtpd) on loopback.
@Suite(.serialized) struct EmailTests {
    let note = Notification(
        id: "alarm-7.raised.1", channel: "email", recipient: "ops@example.com", subject: "泵 1: overheat alarm",
        body: "Device pump-1 raised a overheat alarm at 2026-11-26T12:00:00.000Z; current value 97.5.\nSecond line: 温度",
        tenant: "acme")

    func check(_ record: [String: Any], tls: Bool, login: String?) {
        #expect(record["from"] as? String == "iot@example.com")
        #expect(record["to"] as? [String] == ["ops@example.com"])
        #expect(record["subject"] as? String == "泵 1: overheat alarm")
        #expect(record["x_id"] as? String == "alarm-7.raised.1")
        #expect(record["message_id"] as? String == "<alarm-7.raised.1@example.com>")
        #expect(record["content_type"] as? String == "text/plain")
        #expect(record["charset"] as? String == "utf-8")
        #expect((record["body"] as? String)?.trimmingCharacters(in: .newlines) == note.body)
        #expect((record["date"] as? String)?.hasSuffix("+0000") == true)
        #expect(record["tls"] as? Bool == tls)
        #expect(record["auth_login"] as? String == login)
    }

    @Test func plainSMTPWithAuthPlain() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port, extra: ["--login", "iot", "--password", "s3cret"])
        defer { server.stop() }
        let mail = EmailNotifier(
            configuration: .init(
                url: "smtp://127.0.0.1:\(port)", from: "iot@example.com", username: "iot", password: "s3cret",
                authMechanism: "PLAIN",
                requireTLS: false))
        try await mail.send(note)
        #expect(server.waitForRecords(10) { $0.count == 1 })
        try check(#require(server.records.first), tls: false, login: "iot")
    }

    /// Issue 20, item 4: a plain `smtp://` relay without a login (a local relay on port 25) gets the mail with
    /// the defaults (STARTTLS only when offered: none here), and one that offers STARTTLS is upgraded.
    @Test func plainSMTPWithoutALoginNeedsNoSetting() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port)
        defer { server.stop() }
        try await EmailNotifier(configuration: .init(url: "smtp://127.0.0.1:\(port)", from: "iot@example.com"))
            .send(note)
        #expect(server.waitForRecords(10) { $0.count == 1 })
        try check(#require(server.records.first), tls: false, login: nil)

        let dir = TemporaryDirectory("smtp-opportunistic")
        let (cert, key) = try makeTestCertificate(in: dir.path)
        let tlsPort = ChildProcess.freeLoopbackPort()
        let tlsServer = try Peer.smtp(port: tlsPort, extra: ["--starttls", cert, key])
        defer { tlsServer.stop() }
        try await EmailNotifier(
            configuration: .init(url: "smtp://127.0.0.1:\(tlsPort)", from: "iot@example.com", caFile: cert)
        ).send(note)
        #expect(tlsServer.waitForRecords(10) { $0.count == 1 })
        try check(#require(tlsServer.records.first), tls: true, login: nil)
    }

    /// Issue 23, item 4: a report is an HTML body with CSV attachments (multipart/mixed), as a mail reader
    /// (Python's email package) takes it apart.
    @Test func anHTMLBodyWithAttachmentsArrivesAsMultipart() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port)
        defer { server.stop() }
        let csv = "device,signal,mean\nt-1,temp,21.5\n\"a,b\",x,\n"
        let report = Notification(
            id: "report-daily-1700000000000", channel: "email", recipient: "ops@example.com",
            subject: "Daily report — 温度", body: "<!doctype html><h1>Daily report</h1><p>温度 21.5</p>", tenant: "acme",
            format: .html,
            attachments: [
                NotificationAttachment(
                    name: "summary.csv", contentType: "text/csv; charset=utf-8", data: Array(csv.utf8)),
                NotificationAttachment(name: "al\"arms\r\n.csv", contentType: "text/csv", data: Array("id\n".utf8)),
            ])
        try await EmailNotifier(configuration: .init(url: "smtp://127.0.0.1:\(port)", from: "iot@example.com"))
            .send(report)
        #expect(server.waitForRecords(10) { $0.count == 1 })
        let record = try #require(server.records.first)
        #expect(record["content_type"] as? String == "multipart/mixed")
        #expect(record["subject"] as? String == "Daily report — 温度")
        let parts = try #require(record["parts"] as? [[String: Any]])
        #expect(parts.map { $0["content_type"] as? String } == ["text/html", "text/csv", "text/csv"])
        #expect((parts[0]["text"] as? String)?.contains("<p>温度 21.5</p>") == true, "\(parts[0])")
        #expect(parts[1]["filename"] as? String == "summary.csv" && parts[1]["disposition"] as? String == "attachment")
        #expect(parts[1]["text"] as? String == csv, "\(parts[1])")
        #expect(parts[2]["filename"] as? String == "al_arms__.csv", "a name cannot break the header: \(parts[2])")
    }

    /// With a password and no `requireTLS`, STARTTLS is required: a relay that does not offer it gets no login
    /// in clear, and the message says what to do.
    @Test func aLoginIsNeverSentInClearByDefault() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port, extra: ["--login", "iot", "--password", "s3cret"])
        defer { server.stop() }
        let mail = EmailNotifier(
            configuration: .init(
                url: "smtp://127.0.0.1:\(port)", from: "iot@example.com", username: "iot", password: "s3cret"))
        await #expect(throws: (any Error).self) { try await mail.send(note) }
        do {
            try await mail.send(note)
        } catch {
            #expect("\(error)".contains("does not offer STARTTLS"), "\(error)")
        }
        #expect(server.records.isEmpty)
    }

    @Test func startTLSWithAuthLogin() async throws {
        let dir = TemporaryDirectory("smtp-tls")
        let (cert, key) = try makeTestCertificate(in: dir.path)
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(
            port: port, extra: ["--starttls", cert, key, "--login", "iot", "--password", "s3cret"])
        defer { server.stop() }
        let mail = EmailNotifier(
            configuration: .init(
                url: "smtp://127.0.0.1:\(port)", from: "iot@example.com", username: "iot", password: "s3cret",
                authMechanism: "LOGIN",
                requireTLS: true, caFile: cert))
        try await mail.send(note)
        #expect(server.waitForRecords(10) { $0.count == 1 })
        try check(#require(server.records.first), tls: true, login: "iot")
    }

    @Test func implicitTLS() async throws {
        let dir = TemporaryDirectory("smtps")
        let (cert, key) = try makeTestCertificate(in: dir.path)
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port, extra: ["--smtps", cert, key, "--login", "iot", "--password", "s3cret"])
        defer { server.stop() }
        let mail = EmailNotifier(
            configuration: .init(
                url: "smtps://127.0.0.1:\(port)", from: "iot@example.com", username: "iot", password: "s3cret",
                caFile: cert))
        try await mail.send(note)
        #expect(server.waitForRecords(10) { $0.count == 1 })
        try check(#require(server.records.first), tls: true, login: "iot")
    }

    @Test func refusedLoginDeadLettersWithAReadableReason() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let server = try Peer.smtp(port: port, extra: ["--login", "iot", "--password", "s3cret"])
        defer { server.stop() }
        let mail = EmailNotifier(
            configuration: .init(
                url: "smtp://127.0.0.1:\(port)", from: "iot@example.com", username: "iot", password: "wrong",
                authMechanism: "PLAIN",
                requireTLS: false))
        let outbox = InMemoryOutbox()
        try await outbox.enqueue(acme, outboxMessage("m1", channel: "email", recipient: "ops@example.com"))
        let d = NotificationDispatcher(
            outbox: outbox, notifiers: [mail], clock: SystemClock(), tenants: { ["acme"] }, logger: testLogger)
        try await withDispatcher(d) {
            #expect(
                await eventually(15) { (try? await outbox.messages(acme, status: .deadLetter, limit: 5).count) == 1 })
        }
        let dead = try #require(try await outbox.messages(acme, status: .deadLetter, limit: 5).first)
        #expect(dead.attempts == 1)
        #expect(dead.lastError?.contains("refused the login") == true, "\(dead.lastError ?? "nil")")
        #expect(dead.lastError?.contains("check the channel's username and password") == true)
        #expect(server.records.isEmpty)
    }
}
