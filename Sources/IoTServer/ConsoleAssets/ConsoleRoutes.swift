import Foundation
import HTTPTypes
import Hummingbird
import IoTCore
import NIOCore

/// The web console's files (`Console/` of the package's resources: `index.html`, `console.js`, `console.css`
/// and `vendor/chart.min.js`, Chart.js from Debian's `libjs-chart.js` with its licence), read once and kept.
enum ConsoleAssets {
    struct Asset: Sendable {
        var contentType: String
        var bytes: ByteBuffer
    }

    static let types = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
        "LICENSE": "text/plain; charset=utf-8",
    ]

    /// Every file of the console by its path below `/console/`; empty when the resources are missing.
    static let files: [String: Asset] = {
        guard let root = Bundle.module.resourceURL?.appendingPathComponent("Console") else { return [:] }
        var files: [String: Asset] = [:]
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = enumerator?.nextObject() as? URL {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                let data = try? Data(contentsOf: url)
            else { continue }
            let path = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
            let type = types[url.pathExtension] ?? "application/octet-stream"
            files[path] = Asset(contentType: type, bytes: ByteBuffer(bytes: data))
        }
        return files
    }()

    /// The console's policy: its own files and API only, no inline script, no other origin.
    static let securityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
}

extension ManagementServer {
    /// The web console at `/console/` (and `/` sends a browser there): static files served from the package, no
    /// key needed to load them; everything they show comes from `/api/v1` with the signed-in user's token.
    func consoleRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/") { _, _ in Response(status: .found, headers: [.location: "/console/"]) }
        router.get("/console") { _, _ in try Self.consoleFile("index.html") }
        router.get("/console/**") { request, _ in
            let path = String(request.uri.path.dropFirst("/console/".count))
            return try Self.consoleFile(path.isEmpty ? "index.html" : path)
        }
        return router
    }

    static func consoleFile(_ path: String) throws -> Response {
        guard !path.contains(".."), let asset = ConsoleAssets.files[path] else {
            if ConsoleAssets.files.isEmpty {
                throw APIError.notFound("the console's files are missing from the IoTServer resources; reinstall")
            }
            throw APIError.notFound("the console has no file \(path)")
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: asset.contentType, .cacheControl: "no-cache",
                .contentSecurityPolicy: ConsoleAssets.securityPolicy, .xContentTypeOptions: "nosniff",
            ],
            body: ResponseBody(byteBuffer: asset.bytes))
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}
