import IoTCore
import IoTStorage
import IoTTesting
import Testing

@Suite("RegistryStore conformance")
struct RegistryStoreConformanceTests {
    @Test(arguments: RegistryStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any RegistryStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteRegistryStore(storage: storage))
        }
    }

    @Test(arguments: RegistryStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any RegistryStore>) async throws {
        try await check.run(InMemoryRegistryStore())
    }
}

@Suite("CredentialStore conformance")
struct CredentialStoreConformanceTests {
    @Test(arguments: CredentialStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any CredentialStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in
            try await check.run(SQLiteCredentialStore(storage: storage))
        }
    }

    @Test(arguments: CredentialStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any CredentialStore>) async throws {
        try await check.run(InMemoryCredentialStore())
    }
}

@Suite("RuleStateStore conformance")
struct RuleStateStoreConformanceTests {
    @Test(arguments: RuleStateStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any RuleStateStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteRuleStateStore(storage: storage))
        }
    }

    @Test(arguments: RuleStateStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any RuleStateStore>) async throws {
        try await check.run(InMemoryRuleStateStore())
    }
}

@Suite("StatisticsStore conformance")
struct StatisticsStoreConformanceTests {
    @Test(arguments: StatisticsStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any StatisticsStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in
            try await check.run(SQLiteStatisticsStore(storage: storage))
        }
    }

    @Test(arguments: StatisticsStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any StatisticsStore>) async throws {
        try await check.run(InMemoryStatisticsStore())
    }
}

@Suite("Outbox conformance")
struct OutboxConformanceTests {
    @Test(arguments: OutboxConformance.checks)
    func sqlite(_ check: ConformanceCheck<any Outbox>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteOutbox(storage: storage)) }
    }

    @Test(arguments: OutboxConformance.checks)
    func inMemory(_ check: ConformanceCheck<any Outbox>) async throws {
        try await check.run(InMemoryOutbox())
    }
}

@Suite("ScriptStore conformance")
struct ScriptStoreConformanceTests {
    @Test(arguments: ScriptStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any ScriptStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteScriptStore(storage: storage)) }
    }

    @Test(arguments: ScriptStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any ScriptStore>) async throws {
        try await check.run(InMemoryScriptStore())
    }
}

@Suite("DefinitionStore conformance")
struct DefinitionStoreConformanceTests {
    @Test(arguments: DefinitionStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any DefinitionStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in
            try await check.run(SQLiteDefinitionStore(storage: storage))
        }
    }

    @Test(arguments: DefinitionStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any DefinitionStore>) async throws {
        try await check.run(InMemoryDefinitionStore())
    }
}

@Suite("IdentityStore conformance")
struct IdentityStoreConformanceTests {
    @Test(arguments: IdentityStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any IdentityStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteIdentityStore(storage: storage))
        }
    }

    @Test(arguments: IdentityStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any IdentityStore>) async throws {
        try await check.run(InMemoryIdentityStore())
    }
}

@Suite("AuditStore conformance")
struct AuditStoreConformanceTests {
    @Test(arguments: AuditStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any AuditStore>) async throws {
        try await withStoresTemporaryStorage { storage, _ in try await check.run(SQLiteAuditStore(storage: storage)) }
    }

    @Test(arguments: AuditStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any AuditStore>) async throws {
        try await check.run(InMemoryAuditStore())
    }
}
