import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Testing

/// Every HTTP channel against the local sink, which checks signatures with the vendors' algorithms.
@Suite(.serialized) struct ChannelTests {
    static func channels(
        port: Int, webhookSecret: String = "webhook-secret", dingtalkSecret: String = "dingtalk-secret",
        feishuSecret: String = "feishu-secret", wechatSecret: String = "wx-secret", wecomKey: String = "wecom-key",
        gatewayToken: String = "gateway-token"
    ) -> [any Notifier] {
        let base = "http://127.0.0.1:\(port)"
        let gatewayBody = #"{"to": "${to}", "text": "${text}"}"#
        return [
            WebhookNotifier(channel: "webhook", configuration: .init(url: base + "/webhook", secret: webhookSecret)),
            FeishuNotifier(channel: "feishu", configuration: .init(url: base + "/feishu", secret: feishuSecret)),
            DingTalkNotifier(
                channel: "dingtalk",
                configuration: .init(url: base + "/dingtalk?access_token=dt-token", secret: dingtalkSecret)),
            WeComNotifier(channel: "wecom", configuration: .init(url: base + "/wecom?key=\(wecomKey)")),
            WeChatTemplateNotifier(
                channel: "wechat",
                configuration: .init(
                    baseURL: base + "/wechat", appID: "wx-app", appSecret: wechatSecret, templateID: "tpl-alarm")),
            SlackNotifier(channel: "slack", configuration: .init(url: base + "/slack")),
            HTTPGatewayNotifier(
                channel: "sms",
                configuration: .init(
                    url: base + "/sms", headers: ["Authorization": "Bearer \(gatewayToken)"], body: gatewayBody)),
            HTTPGatewayNotifier(
                channel: "voice",
                configuration: .init(
                    url: base + "/voice", headers: ["Authorization": "Bearer \(gatewayToken)"], body: gatewayBody)),
        ]
    }

    static let recipients = [
        "webhook": "", "feishu": "", "dingtalk": "", "wecom": "", "wechat": "openid-1", "slack": "",
        "sms": "+8613800000000", "voice": "+8613800000001",
    ]

    @Test func everyChannelIsAcceptedBySinkWithValidSignatures() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let sink = try Peer.httpSink(port: port)
        defer { sink.stop() }
        for notifier in Self.channels(port: port) {
            let body = "Device \"pump-1\" raised a **overheat** alarm\nat 12:00; value 97.5 °C"
            try await notifier.send(
                Notification(
                    id: "n-\(notifier.channel)", channel: notifier.channel,
                    recipient: Self.recipients[notifier.channel]!,
                    subject: "pump-1: overheat", body: body, tenant: "acme"))
        }
        #expect(sink.waitForRecords(10) { $0.count >= 8 })
        for channel in Self.recipients.keys {
            let records = sink.records(channel: channel)
            #expect(records.count == 1, "\(channel): \(records)")
            #expect(records.first?["ok"] as? Bool == true, "\(channel): \(records)")
        }
        let webhook = try #require(sink.records(channel: "webhook").first?["payload"] as? [String: Any])
        #expect(webhook["body"] as? String == "Device \"pump-1\" raised a **overheat** alarm\nat 12:00; value 97.5 °C")
        #expect(webhook["subject"] as? String == "pump-1: overheat")
        #expect(webhook["tenant"] as? String == "acme")
        let dingtalk = try #require(sink.records(channel: "dingtalk").first?["payload"] as? [String: Any])
        #expect((dingtalk["markdown"] as? [String: Any])?["title"] as? String == "pump-1: overheat")
        let wechat = try #require(sink.records(channel: "wechat").first?["payload"] as? [String: Any])
        #expect(wechat["touser"] as? String == "openid-1")
        #expect(
            ((wechat["data"] as? [String: Any])?["first"] as? [String: Any])?["value"] as? String == "pump-1: overheat")
        let slack = try #require(sink.records(channel: "slack").first?["payload"] as? [String: Any])
        #expect((slack["text"] as? String)?.contains("*overheat*") == true)
        #expect((slack["text"] as? String)?.contains("**") == false)
        let sms = try #require(sink.records(channel: "sms").first?["payload"] as? [String: Any])
        #expect(sms["to"] as? String == "+8613800000000")
        #expect((sms["text"] as? String)?.contains("\"pump-1\"") == true, "JSON-escaped into the gateway template")
        let feishu = try #require(sink.records(channel: "feishu").first?["payload"] as? [String: Any])
        #expect(
            ((feishu["card"] as? [String: Any])?["elements"] as? [[String: Any]])?.first?["content"] as? String
                == "Device \"pump-1\" raised a **overheat** alarm\nat 12:00; value 97.5 °C")
    }

    /// Issue 20, item 3: the generic webhook signs as Standard Webhooks by default (verified here by the
    /// `standardwebhooks` library from PyPI, with a `whsec_` secret), or as GitHub's `X-Hub-Signature-256`, or in
    /// the earlier `X-IoT-Signature` scheme; a wrong secret is refused by each receiver.
    @Test func webhookSignaturesAreVerifiedByTheReceiversOfTheirSchemes() async throws {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let port = ChildProcess.freeLoopbackPort()
        let sink = try Peer.httpSink(port: port, extra: ["--webhook-secret", secret])
        defer { sink.stop() }
        let base = "http://127.0.0.1:\(port)"
        for (path, scheme, key) in [
            ("/webhook", WebhookNotifier.Signature.standard, secret), ("/webhook-github", .github, secret),
            ("/webhook-iot", .iot, secret), ("/webhook", .standard, "whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let hook = WebhookNotifier(
                channel: "webhook", configuration: .init(url: base + path, secret: key, signature: scheme))
            let n = Notification(
                id: "n-\(scheme)-\(key.suffix(4))", channel: "webhook", recipient: "", subject: "s", body: "b",
                tenant: "acme")
            if key == secret {
                try await hook.send(n)
            } else {
                await #expect(throws: (any Error).self, "a wrong key is refused") { try await hook.send(n) }
            }
        }
        #expect(sink.waitForRecords(10) { $0.count >= 4 })
        #expect(sink.records(channel: "webhook").map { $0["ok"] as? Bool } == [true, false])
        #expect(sink.records(channel: "webhook-github").first?["ok"] as? Bool == true)
        #expect(sink.records(channel: "webhook-iot").first?["ok"] as? Bool == true)
        #expect(throws: IoTError.self, "a whsec_ secret must carry base64") {
            try WebhookNotifier.Configuration(url: base, secret: "whsec_not base64!").validate()
        }
    }

    @Test func badCredentialsDeadLetterWithAReadableReason() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let sink = try Peer.httpSink(port: port)
        defer { sink.stop() }
        let outbox = InMemoryOutbox()
        let notifiers = Self.channels(
            port: port, webhookSecret: "wrong", dingtalkSecret: "wrong", feishuSecret: "wrong", wechatSecret: "wrong",
            wecomKey: "wrong",
            gatewayToken: "wrong")
        for (i, n) in notifiers.enumerated() where n.channel != "slack" {
            try await outbox.enqueue(
                acme,
                outboxMessage(
                    "bad-\(n.channel)", channel: n.channel, recipient: Self.recipients[n.channel]!, created: Int64(i)))
        }
        var c = NotificationDispatcher.Configuration()
        c.initialBackoff = .milliseconds(50)
        let d = NotificationDispatcher(
            configuration: c, outbox: outbox, notifiers: notifiers, clock: SystemClock(), tenants: { ["acme"] },
            logger: testLogger)
        try await withDispatcher(d) {
            #expect(
                await eventually(20) { (try? await outbox.messages(acme, status: .deadLetter, limit: 20).count) == 7 })
        }
        let dead = Dictionary(
            uniqueKeysWithValues: try await outbox.messages(acme, status: .deadLetter, limit: 20).map {
                ($0.channel, $0)
            })
        for (channel, reason) in [
            ("webhook", "HTTP 401"), ("feishu", "code 19021"), ("dingtalk", "code 310000 \"sign not match\""),
            ("wecom", "code 93000"),
            ("wechat", "code 40125 \"invalid appsecret\""), ("sms", "HTTP 401"), ("voice", "HTTP 401"),
        ] {
            let m = try #require(dead[channel], "\(channel) not dead-lettered")
            #expect(m.attempts == 1, "\(channel): credentials are not retried")
            #expect(m.lastError?.contains(reason) == true, "\(channel): \(m.lastError ?? "nil")")
            #expect(
                m.lastError?.contains("refused the message (unauthorized)") == true,
                "\(channel): \(m.lastError ?? "nil")")
        }
        #expect(sink.records.allSatisfy { $0["ok"] as? Bool == false })
    }
}
