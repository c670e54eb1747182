func runIngestBenchmark(_ options: BenchOptions) async throws {
    print("ingest benchmark: not yet written")
}
