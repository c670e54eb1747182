import Foundation
import IoTCore
import IoTServer
import IoTStorage
import IoTTesting
import Logging

/// Bulk provisioning (issue 22, item 8): `POST …/devices/bulk` with 10,000 devices and their tokens on SQLite,
/// against creating devices one by one (`POST …/devices`, then `POST …/tokens`) on one keep-alive connection,
/// in the same run. Goal: 10,000 in ≤ 1 s.
func runProvisionBenchmark(_ options: BenchOptions) async throws {
    let count = options.points ?? (options.smoke ? 1_000 : 10_000)
    let singles = options.smoke ? 50 : 300
    print("== provision: \(grouped(Double(count))) devices with their tokens in one call vs one by one")
    guard shell("command -v curl") != nil else {
        print("curl is not installed (apt-get install curl): skipped")
        return
    }
    let bench = try await BenchTenant("provision", options: options)
    defer { removeTree(bench.directory) }
    let (dir, logger, storage, registry, tenant) =
        (bench.directory, bench.logger, bench.storage, bench.registry, bench.tenant)
    let key = String(repeating: "k", count: 32)
    let api = ManagementServer(
        configuration: .init(port: 0, adminAPIKey: key), registry: registry, points: SQLitePointStore(storage: storage),
        tokens: TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage)), ingestor: nil,
        prometheus: nil, logger: logger)
    let server = Task { try await api.run() }
    defer { server.cancel() }
    let port = try await api.listeningPort()
    let base = "http://127.0.0.1:\(port)/api/v1/tenants/bench/devices"

    let body = dir + "/bulk.json"
    try (#"{"devices":["# + (0..<count).map { #"{"uid":"b-\#($0)","product":"p"}"# }.joined(separator: ",") + "]}")
        .write(toFile: body, atomically: true, encoding: .utf8)
    let bulk = shell(
        "curl -s -o '\(dir)/bulk.out' -w '%{http_code} %{time_total}' -H 'X-API-Key: \(key)' -H 'Content-Type: application/json' --data-binary @'\(body)' '\(base)/bulk'"
    )?.split(separator: " ")
    guard let bulk, bulk.count == 2, bulk[0] == "201", let bulkSeconds = Double(bulk[1]) else {
        throw BenchError("the bulk call failed: \(bulk.map { $0.joined(separator: " ") } ?? "no answer")")
    }
    let answer = (try? String(contentsOfFile: dir + "/bulk.out", encoding: .utf8)) ?? ""
    let tokens = answer.components(separatedBy: #""token":""#).count - 1
    guard tokens == count else { throw BenchError("the bulk call returned \(tokens) tokens, not \(count)") }

    // One by one: a device and its token per pair of requests, all on one connection (curl --next).
    var config = ""
    for i in 0..<singles {
        if i > 0 { config += "next\n" }
        config += """
            url = "\(base)"
            header = "X-API-Key: \(key)"
            header = "Content-Type: application/json"
            data = "{\\"uid\\":\\"s-\(i)\\",\\"product\\":\\"p\\"}"
            output = "/dev/null"
            next
            url = "\(base)/s-\(i)/tokens"
            header = "X-API-Key: \(key)"
            header = "Content-Type: application/json"
            data = "{}"
            output = "/dev/null"

            """
    }
    try config.write(toFile: dir + "/singles.curl", atomically: true, encoding: .utf8)
    let t = monotonicSeconds()
    guard shell("curl -s -K '\(dir)/singles.curl'") != nil else { throw BenchError("the one-by-one calls failed") }
    let perDevice = (monotonicSeconds() - t) / Double(singles)
    let created = try await registry.devices(.tenant(tenant), product: nil).count
    guard created == count + singles else { throw BenchError("\(created) devices stored, not \(count + singles)") }
    print(
        String(
            format:
                "bulk: %@ devices with tokens in %.0f ms (%.1f µs each; goal ≤ 1 s) | one by one: %.2f ms per device and token (%@ in %.1f s at that rate): %.0f× faster",
            grouped(Double(count)), bulkSeconds * 1_000, bulkSeconds / Double(count) * 1e6, perDevice * 1_000,
            grouped(Double(count)), perDevice * Double(count), perDevice * Double(count) / bulkSeconds))
}
