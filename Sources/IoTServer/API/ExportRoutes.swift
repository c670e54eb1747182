import Hummingbird
import IoTCore
import NIOCore

/// The formats of `GET /api/v1/tenants/{tenant}/export`.
enum ExportFormat: String, CaseIterable {
    case ndjson, csv, lp

    var contentType: String {
        switch self {
        case .ndjson: "application/x-ndjson"
        case .csv: "text/csv; charset=utf-8"
        case .lp: "text/plain; charset=utf-8"
        }
    }
}

extension ManagementAPI {
    /// `GET /api/v1/tenants/{tenant}/export`: the raw points of several devices and signals between `from` and
    /// `to`, streamed in pages of 10,000 per series, with no cap (NDJSON, CSV or InfluxDB line protocol). Needs
    /// the permissions `data:read` and `data:export`.
    func exportRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/api/v1/tenants/:tenant/export", needs: .dataExport) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                guard try context.principal().permissions.contains(.dataRead) else {
                    throw APIError(
                        .forbidden, .forbidden,
                        "an export reads data: it needs the permission \"data:read\" too, which your roles or key do not grant"
                    )
                }
                let parameters = request.uri.queryParameters
                var from: Int64 = 0
                var to: Int64 = .max
                if let v = parameters["from"] { from = try SeriesQuery.time(v, "from") }
                if let v = parameters["to"] { to = try SeriesQuery.time(v, "to") }
                guard from < to else { throw APIError.badRequest("from (\(from)) must be before to (\(to))") }
                let formatName = parameters["format"].map(String.init) ?? "ndjson"
                guard let format = ExportFormat(rawValue: formatName) else {
                    throw APIError.badRequest(
                        "format \"\(formatName)\" is not known; use \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                let visible = try await self.registry.devices(scope, product: nil)
                let asked = parameters.getAll("device").map { String($0) }
                var devices = visible
                if !asked.isEmpty {
                    let byUID = Dictionary(visible.map { ($0.uid, $0) }, uniquingKeysWith: { first, _ in first })
                    devices = try asked.map { uid in
                        guard let device = byUID[uid] else {
                            throw APIError(
                                .notFound, .unknownDevice,
                                "device \"\(uid)\" does not exist in tenant \"\(scope.tenant)\"")
                        }
                        return device
                    }
                }
                let signals = parameters.getAll("signal").map { String($0) }
                let points = self.points
                let (chosen, start, end) = (devices, from, to)
                var response = Response(
                    status: .ok, headers: [.contentType: format.contentType],
                    body: ResponseBody { writer in
                        var buffer = ByteBuffer()
                        if format == .csv { buffer.writeString("device,signal,time,value\n") }
                        for device in chosen {
                            let names =
                                signals.isEmpty
                                ? try await points.latest(scope, device: device.uid, signals: nil).map(\.signal)
                                : signals
                            for signal in names {
                                var cursor = start
                                while cursor < end {
                                    let page = try await points.range(
                                        scope, series: SeriesKey(device: device.uid, signal: signal), from: cursor,
                                        to: end, limit: 10_000, order: .ascending)
                                    for p in page {
                                        buffer.writeString(Self.exportLine(format, device, signal, p.time, p.value))
                                    }
                                    if buffer.readableBytes >= 1 << 16 {
                                        try await writer.write(buffer)
                                        buffer.clear()
                                    }
                                    guard page.count == 10_000, let last = page.last?.time, last < Int64.max else {
                                        break
                                    }
                                    cursor = last + 1
                                }
                            }
                        }
                        if buffer.readableBytes > 0 { try await writer.write(buffer) }
                        try await writer.finish(nil)
                    })
                if format == .csv {
                    response.headers[.contentDisposition] =
                        "attachment; filename=\"\(CSV.fileName([scope.tenant.rawValue, "export"]))\""
                }
                return response
            }
        }
        return router
    }

    static func exportLine(
        _ format: ExportFormat, _ device: Device, _ signal: String, _ time: Int64, _ value: SignalValue
    )
        -> String
    {
        switch format {
        case .ndjson:
            let json: String
            switch value {
            case .number(let v): json = v.isFinite ? v.description : "null"
            case .bool(let b): json = b ? "true" : "false"
            case .text(let t): json = jsonString(t)
            }
            return #"{"device":"# + jsonString(device.uid) + #","signal":"# + jsonString(signal)
                + #","time":\#(time),"value":"# + json + "}\n"
        case .csv:
            return CSV.field(.text(device.uid)) + "," + CSV.field(.text(signal)) + ",\(time)," + CSV.field(value) + "\n"
        case .lp:
            return LineProtocol.line(
                measurement: device.product.rawValue, tags: [("device", device.uid)], field: signal, value: value,
                time: time)
        }
    }
}
