import Hummingbird
import IoTCore

/// One point of a series, value as plain JSON.
struct PointOutput: Encodable {
    var signal: String?
    var time: Int64
    var value: JSONValue
}

/// The answer to a raw series query.
struct SeriesOutput: Encodable {
    var device: String
    var signal: String
    var from: Int64
    var to: Int64
    var points: [PointOutput]
    /// Whether more points exist than were returned (`limit` or ``ManagementServer/Configuration/maxExportPoints``).
    var truncated: Bool
}

/// One aggregated bucket.
struct BucketOutput: Encodable {
    var start: Int64
    var end: Int64
    var count: Int
    var value: JSONValue
}

/// The answer to an aggregate series query.
struct AggregateOutput: Encodable {
    var device: String
    var signal: String
    var from: Int64
    var to: Int64
    var agg: String
    var bucketMillis: Int64?
    var buckets: [BucketOutput]
}

extension ManagementAPI {
    func dataRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let device = "/api/v1/tenants/:tenant/devices/:uid"
        router.get(RouterPath(device + "/latest"), needs: .dataRead) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                let signals = request.uri.queryParameters["signals"].map {
                    $0.split(separator: ",").map(String.init)
                }
                let latest = try await self.points.latest(scope, device: device.uid, signals: signals)
                return try JSONOutput.response(
                    latest.map { PointOutput(signal: $0.signal, time: $0.time, value: JSONValue($0.value)) })
            }
        }
        router.get(RouterPath(device + "/series/:signal"), needs: .dataRead) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                let signal = context.parameters.get("signal") ?? ""
                let parameters = request.uri.queryParameters
                let query = try SeriesQuery(
                    { parameters[Substring($0)] }, maxPoints: self.configuration.maxExportPoints)
                if query.format != .json, !(try context.principal().permissions.contains(.dataExport)) {
                    throw APIError(
                        .forbidden, .forbidden,
                        "an export (format=\(query.format.rawValue)) needs the permission \"data:export\", which your roles or key do not grant"
                    )
                }
                let series = SeriesKey(device: device.uid, signal: signal)
                if let agg = query.aggregate {
                    return try await self.aggregate(scope, series, query, agg)
                }
                return try await self.raw(scope, device, series, query)
            }
        }
        return router
    }

    private func raw(_ scope: AccessScope, _ device: Device, _ series: SeriesKey, _ query: SeriesQuery) async throws
        -> Response
    {
        let limit = min(query.limit ?? configuration.maxExportPoints, configuration.maxExportPoints)
        var found = try await points.range(
            scope, series: series, from: query.from, to: query.to, limit: limit + 1, order: .ascending)
        let truncated = found.count > limit
        if truncated { found.removeLast(found.count - limit) }
        var response: Response
        switch query.format {
        case .json:
            response = try JSONOutput.response(
                SeriesOutput(
                    device: series.device, signal: series.signal, from: query.from, to: query.to,
                    points: found.map { PointOutput(signal: nil, time: $0.time, value: JSONValue($0.value)) },
                    truncated: truncated))
        case .csv:
            var csv = "time,value\n"
            for p in found { csv += "\(p.time),\(CSV.field(p.value))\n" }
            response = JSONOutput.text(csv, contentType: "text/csv; charset=utf-8")
            response.headers[.contentDisposition] =
                "attachment; filename=\"\(CSV.fileName([series.device, series.signal]))\""
        case .lp:
            let lines = found.map { Self.exportLine(.lp, device, series.signal, $0.time, $0.value) }
            response = JSONOutput.text(lines.joined(), contentType: ExportFormat.lp.contentType)
        }
        if truncated { response.headers[.init("X-Truncated")!] = "true" }
        return response
    }

    private func aggregate(
        _ scope: AccessScope, _ series: SeriesKey, _ query: SeriesQuery, _ agg: SeriesQuery.Aggregate
    )
        async throws -> Response
    {
        let buckets = try await points.aggregate(
            scope, series: series, from: query.from, to: query.to, bucketMillis: query.bucketMillis)
        switch query.format {
        case .json:
            return try JSONOutput.response(
                AggregateOutput(
                    device: series.device, signal: series.signal, from: query.from, to: query.to, agg: agg.rawValue,
                    bucketMillis: query.bucketMillis,
                    buckets: buckets.map {
                        BucketOutput(start: $0.start, end: $0.end, count: $0.count, value: JSONValue(agg.value(of: $0)))
                    }))
        case .csv, .lp:
            var csv = "start,end,\(agg.rawValue)\n"
            for b in buckets {
                let value = agg == .count ? String(b.count) : CSV.field(agg.value(of: b))
                csv += "\(b.start),\(b.end),\(value)\n"
            }
            var response = JSONOutput.text(csv, contentType: "text/csv; charset=utf-8")
            response.headers[.contentDisposition] =
                "attachment; filename=\"\(CSV.fileName([series.device, series.signal, agg.rawValue]))\""
            return response
        }
    }
}
