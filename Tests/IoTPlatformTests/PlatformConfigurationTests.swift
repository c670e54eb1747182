import Foundation
import IoTCore
import IoTProtocols
import IoTServer
import IoTStorage
import Logging
import Testing

@testable import IoTPlatform

/// Issue 18, item 3: one configuration decodes straight into the libraries' own `Configuration`s, with their
/// defaults, their own `validate()`, and an error naming an unknown key.
@Suite struct PlatformConfigurationTests {
    func refusal(_ yaml: String) -> String {
        do {
            _ = try PlatformConfiguration(yaml: yaml, environment: [:])
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    /// Retention applies to PostgreSQL too (it used to be refused there).
    @Test func retentionIsAcceptedOnPostgreSQL() throws {
        let c = try PlatformConfiguration(
            yaml: "storage: { retentionDays: 7, postgres: { url: \"postgres://u@h/db\" } }", environment: [:])
        #expect(c.storage.points.retention == .seconds(7 * 86_400))
    }

    @Test func anEmptyFileIsTheLibrariesDefaults() throws {
        let c = try PlatformConfiguration(yaml: "", environment: [:])
        #expect(c.dataDirectory == "./data")
        #expect(c.http.listener.port == HTTPIngestTransport.Configuration().port)
        #expect(c.management.port == ManagementServer.Configuration().port && c.management.adminAPIKey == nil)
        #expect(c.journal.segmentBytes == FileJournal.Configuration().segmentBytes)
        #expect(c.ingest.ingestor.queueCapacityPoints == Ingestor.Configuration().queueCapacityPoints)
        #expect(c.coap.listener == nil && c.websocket == nil && c.modbus == nil && c.tcp.isEmpty)
    }

    @Test func eachSectionIsTheLibrarysConfiguration() throws {
        let c = try PlatformConfiguration(
            yaml: """
                dataDirectory: /tmp/x
                journal: { durability: process, segmentBytes: 8192 }
                storage: { cacheSizeKiB: 2048, duplicatePolicy: firstWriteWins, retentionDays: 2, rollupDelaySeconds: 30 }
                ingest: { queueCapacityPoints: 5000, rateLimit: "10:1", authenticationCacheMillis: 250 }
                http: { host: 0.0.0.0, port: 8088, maxBodyBytes: 4096, limits: { maxConnections: 7 } }
                coap: { port: 5699, maxObservations: 9, reregisterAfterMillis: 5000 }
                websocket: { port: 8099, path: /ws, parser: senml }
                tcp: [{ port: 9100, framing: length-prefixed, maxConnections: 3 }]
                modbus: { ioThreads: 2 }
                auth: { sessionTokenSeconds: 60, maxFailedAttempts: 4, blockSeconds: 30 }
                mqtt: { threads: 3 }
                logging: { level: WARNING }
                """, environment: [:])
        #expect(c.journal.segmentBytes == 8192)
        #expect(c.storage.sqlite.cacheSizeKiB == 2048 && c.storage.points.duplicatePolicy == .firstWriteWins)
        #expect(c.storage.points.retention == .seconds(2 * 86_400) && c.storage.points.rollupDelay == .seconds(30))
        #expect(c.ingest.ingestor.queueCapacityPoints == 5000 && c.ingest.ingestor.rateLimit?.description == "10:1")
        #expect(c.ingest.gateway.authenticationCacheLifetime.inMilliseconds == 250)
        #expect(c.http.listener.host == "0.0.0.0" && c.http.listener.port == 8088)
        #expect(c.http.listener.maxBodyBytes == 4096 && c.http.listener.limits.maxConnections == 7)
        #expect(c.coap.listener?.port == 5699 && c.coap.observer.maxObservations == 9)
        #expect(c.coap.observer.reregisterAfter.inMilliseconds == 5000)
        #expect(c.websocket?.listener.path == "/ws" && c.websocket?.parser == "senml")
        #expect(c.tcp.first?.listener.framing == .lengthPrefixed && c.tcp.first?.listener.maxConnections == 3)
        #expect(c.tcp.first?.parser == "json")
        #expect(c.modbus?.poller.ioThreads == 2 && c.modbus?.devices.isEmpty == true)
        #expect(c.auth.sessionTokenLifetime.inMilliseconds == 60_000 && c.auth.failedAttempts.maxFailures == 4)
        #expect(c.auth.failedAttempts.blockDuration.inMilliseconds == 30_000)
        #expect(c.mqtt.manager.threads == 3)
        #expect(c.logLevel == .warning)
    }

    @Test func theOlderPlacesOfTwoIngestKeysStillCount() throws {
        let old = try PlatformConfiguration(
            yaml: "http: { rateLimit: \"5:1\", authenticationCacheMillis: 100 }", environment: [:])
        #expect(old.ingest.ingestor.rateLimit?.description == "5:1")
        #expect(old.ingest.gateway.authenticationCacheLifetime.inMilliseconds == 100)
        let coap = try PlatformConfiguration(yaml: "coap: { authenticationCacheMillis: 0 }", environment: [:])
        #expect(coap.ingest.gateway.authenticationCacheLifetime.inMilliseconds == 0)
        let both = try PlatformConfiguration(
            yaml: "ingest: { authenticationCacheMillis: 500 }\nhttp: { authenticationCacheMillis: 100 }",
            environment: [:])
        #expect(both.ingest.gateway.authenticationCacheLifetime.inMilliseconds == 500, "ingest wins")
    }

    @Test func mistakesAreRefusedNamingTheKey() {
        for (yaml, expected) in [
            ("http: { maxBodyByte: 10 }", "http.maxBodyByte: unknown key; did you mean maxBodyBytes?"),
            ("tcp: [{ port: 9000, framng: lines }]", "tcp[0].framng: unknown key; did you mean framing?"),
            ("tcp: [{ port: 9000, framing: words }]", "tcp[0].framing: 'words' is not lines or length-prefixed"),
            ("tcp: [{ framing: lines }]", "tcp[0].port: missing"),
            ("http: { port: x }", "http.port: expected a whole number"),
            ("storage: { cacheSizeKiB: -5 }", "storage.cacheSizeKiB: -5 is out of range; use 1 to 16777216 KiB"),
            ("ingest: { maxBatchPoints: 0 }", "ingest.maxBatchPoints: 0 is out of range"),
            ("ingest: { rateLimit: \"x\" }", "ingest.rateLimit: "),
            ("http: { port: 70000 }", "http: HTTP ingest port 70000 is out of range"),
            ("http: { limits: { maxConnections: 0 } }", "http: HTTP ingest limits: maxConnections must be at least 1"),
            ("management: { maxBodyBytes: 0 }", "management.maxBodyBytes: 0 is out of range"),
            ("mqtt: { threads: 65 }", "mqtt.threads: 65 is out of range; use 1 to 64"),
            ("modbus: { ioThreads: 0 }", "modbus.ioThreads: 0 is out of range"),
            ("coap: { reregisterAfterMillis: 10 }", "coap.reregisterAfterMillis: 10 is out of range"),
            ("auth: { blockSeconds: 9223372036854775807 }", "auth.blockSeconds: 9223372036854775807 is out of range"),
            ("auth: { passwordIterations: 5 }", "auth.passwordIterations: 5 is out of range"),
            ("logging: { level: loud }", "logging.level: 'loud' is not one of"),
            ("websocket: { path: ws }", "websocket: WebSocket path must start with '/'"),
            ("journal: { segmentBytes: 1 }", "journal.segmentBytes: 1 is out of range"),
            ("backup: { fullEveryHours: 24 }", "backup.to is missing"),
            ("backup: { to: /b, keepFull: 0 }", "backup.keepFull is 0; keep at least 1"),
            ("backup: { to: /b, continuous: { everySeconds: 0 } }", "backup.continuous.everySeconds is 0.0; use 0.1"),
            (
                "backup: { to: /b, continuos: { everySeconds: 1 } }",
                "backup.continuos: unknown key; did you mean continuous?"
            ),
            ("storage: { postgres: { url: pg } }", "storage: postgres.url 'pg' is not a PostgreSQL URL"),
            ("storage: { postgres: { url: \"postgres://h/db\" } }", "storage: postgres.url names no user"),
            ("storage: { postgres: { schemaPrefix: iot } }", "storage.postgres.url: missing"),
            (
                "storage: { postgres: { url: \"postgres://u@h/db\", passwordFile: /nope } }",
                "storage.postgres.passwordFile: cannot read /nope"
            ),
            (
                "storage: { postgres: { url: \"postgres://u@h/db\", schemaPrefix: Iot } }",
                "storage: postgres.schemaPrefix 'Iot' is not valid"
            ),
            (
                "storage: { postgres: { url: \"postgres://u@h/db\" } }\nbackup: { to: /b }",
                "backup: copies the SQLite files"
            ),
            ("cluster: { instanceID: \"a b\" }", "cluster.instanceID: 'a b' is not valid"),
            ("cluster: { redis: { url: \"redis://127.0.0.1\" } }", "cluster.redis: instances that share MQTT clients"),
            (
                "storage: { postgres: { url: \"postgres://u@h/db\" } }\ncluster: { redis: { url: \"http://r\" } }",
                "the Redis URL 'http://r' must start with redis://"
            ),
            (
                "storage: { postgres: { url: \"postgres://u@h/db\" } }\ncluster: { redis: { url: \"redis://r\", heartbeatMillis: 900 } }",
                "cluster.redis: heartbeatMillis must be at least 50 and leaseMillis at least twice it"
            ),
        ] {
            let message = refusal(yaml)
            #expect(message.hasPrefix(expected), "\(yaml) → \(message)")
        }
    }

    /// Issue 22, item 2: scheduled and continuous backups are set in the file; `continuous.to` may name the
    /// repository, as the issue writes it.
    @Test func backupsAreSetInTheFile() throws {
        let c = try PlatformConfiguration(
            yaml: "backup: { continuous: { to: /b, everySeconds: 10 }, incrementalEveryMinutes: 60, keepFull: 3 }",
            environment: [:])
        #expect(
            c.backup
                == BackupService.Configuration(
                    to: "/b", incrementalEveryMinutes: 60, continuousEverySeconds: 10, keepFull: 3))
        #expect(try PlatformConfiguration(yaml: "", environment: [:]).backup == nil)
    }

    @Test func theAdminKeyComesFromTheEnvironmentAndIsChecked() throws {
        let key = String(repeating: "k", count: 40)
        let c = try PlatformConfiguration(yaml: "", environment: ["IOTD_ADMIN_API_KEY": key])
        #expect(c.management.adminAPIKey == key)
        #expect(
            refusal("management: { adminAPIKey: \(PlatformConfiguration.exampleAdminKey) }").contains("placeholder"))
        #expect(refusal("management: { adminAPIKey: short }").contains("at least 32"))
    }

    /// The documented example decodes with every key known (its secrets from the environment).
    @Test func theExampleFileHasNoUnknownKey() throws {
        let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
        let environment = [
            "IOTD_ADMIN_API_KEY": "example-admin-key-0123456789abcdef0123", "IOTD_PSK_GATEWAY_1": "psk",
            "IOTD_MOSQUITTO_ADMIN_PASSWORD": "pw", "IOTD_PLANT_A_PASSWORD": "pw", "IOTD_WEBHOOK_SECRET": "s",
            "IOTD_SMTP_PASSWORD": "pw", "IOTD_DINGTALK_SECRET": "s", "IOTD_SMS_AUTHORIZATION": "Bearer x",
            "IOTD_EMQX_KEY": "emqx-key",
        ]
        let (c, inline) = try PlatformConfiguration.load(
            path: root + "/Examples/iotd.example.yaml", environment: environment)
        #expect(inline.isEmpty)
        #expect(!c.tenants.isEmpty && c.coap.listener?.dtls?.keys.isEmpty == false)
    }

    /// Issue 20, item 4: every key a notification channel decodes is documented in the example file (a line
    /// `#   <key> …` in its `notifications:` section). The keys come from the decoder itself, so a key added
    /// later without its documentation fails here.
    @Test func everyChannelKeyIsDocumentedInTheExample() throws {
        let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
        let text = try String(contentsOfFile: root + "/Examples/iotd.example.yaml", encoding: .utf8)
        let start = try #require(text.range(of: "\nnotifications:"))
        let section = String(text[start.upperBound...]).components(separatedBy: "\n")
            .prefix { !$0.hasPrefix("tenants:") }
        let channel = try JSONDecoder().decode(
            NotificationSettings.Channel.self, from: Data(#"{"name": "c", "type": "inbox"}"#.utf8))
        let keys = Mirror(reflecting: channel).children.compactMap(\.label)
        #expect(keys.count >= 29, "\(keys)")
        for key in keys {
            let documented = section.contains { line in
                let words = line.split(separator: " ", omittingEmptySubsequences: true)
                guard words.first == "#" else { return false }
                return words.dropFirst().prefix(2).contains { $0.trimmingCharacters(in: .punctuationCharacters) == key }
            }
            #expect(documented, "channel key '\(key)' is not documented in Examples/iotd.example.yaml")
        }
    }
}
