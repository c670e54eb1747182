func runQueryBenchmark(_ options: BenchOptions) async throws {
    print("query benchmark: not yet written")
}
