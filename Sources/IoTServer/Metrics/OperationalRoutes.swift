import Hummingbird
import IoTCore
import Prometheus

extension ManagementServer {
    /// `/metrics`, `/healthz`, `/readyz` and `/openapi.yaml`: no admin key needed.
    func operationalRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/metrics") { _, _ in
            guard let prometheus = self.prometheus else {
                throw APIError.notFound(
                    "metrics are not configured in this process; pass a PrometheusCollectorRegistry")
            }
            // Gauges of run-time state are sampled for the scrape.
            self.api.ingestor?.sampleMetrics()
            for resource in self.resources { await resource.sampleMetrics() }
            return JSONOutput.text(prometheus.emitToString(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/healthz") { _, _ in
            JSONOutput.text(#"{"status":"ok"}"#, contentType: "application/json")
        }
        router.get("/readyz") { _, _ in
            if self.api.ingestor?.isReady == false {
                return JSONOutput.text(
                    #"{"status":"starting","message":"the ingestor is replaying its journal or stopping; retry shortly"}"#,
                    contentType: "application/json", status: .serviceUnavailable)
            }
            return JSONOutput.text(#"{"status":"ready"}"#, contentType: "application/json")
        }
        router.get("/openapi.yaml") { _, _ in
            JSONOutput.text(try OpenAPIDocument.yaml(), contentType: "application/yaml; charset=utf-8")
        }
        return router
    }
}
