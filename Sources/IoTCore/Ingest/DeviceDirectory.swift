import Synchronization

/// The ingestor's cache of tenants and devices, so the hot path resolves a device without a query.
///
/// Entries expire after `ttlMillis` (a change made directly in the registry is seen within that time);
/// ``Ingestor/invalidate(tenant:device:)`` drops them at once. Where the registry keeps a revision
/// (``RegistryStore/registryRevision(of:)``), a tenant's entries are kept past that for as long as its
/// revision stays the same (``RevisionWatch``): a fleet whose devices report less often than the lifetime
/// is not read again for every message. Unknown devices are remembered for a shorter time, so a flood of
/// messages from an unregistered device costs one query per second.
final class DeviceDirectory: Sendable {
    /// A device with what its product adds, immutable and shared: every message of the device reads the same
    /// instance (a class, so a lookup on the hot path costs one reference count, not a copy of every field).
    final class ResolvedDevice: Sendable {
        let device: Device
        let signals: [String: Signal]
        /// The product's parser name (``Product/parser``), if it names one.
        let parser: String?
        /// What the device may speak for, or `nil` when it is not a gateway (``Device/gatewayScope(product:)``).
        let gateway: GatewayScope?

        init(device: Device, signals: [String: Signal], parser: String?, gateway: GatewayScope?) {
            self.device = device
            self.signals = signals
            self.parser = parser
            self.gateway = gateway
        }
    }

    enum Lookup<T> {
        case hit(T)
        case absent
        case miss
    }

    private struct Cached<T> {
        var value: T?
        /// When the lookup started.
        var loadedAt: Int64
    }

    private struct ProductKey: Hashable {
        var tenant: TenantID
        var product: ProductID
    }

    private struct State {
        var tenants: [TenantID: Cached<Tenant>] = [:]
        var devices: [DeviceIdentity: Cached<ResolvedDevice>] = [:]
        /// Products by themselves: the devices of a product share one reading of it (a fleet whose devices
        /// each report less often than the cache lifetime reloads a device per message, but not its product).
        var products: [ProductKey: Cached<ProductEntry>] = [:]
        /// Per tenant with a cached tenant entry, its registry's revision.
        var revisions: [TenantID: RevisionWatch] = [:]
    }

    /// A cached product with its signals by name, built once: every device of the product that declares no
    /// signals of its own shares this one dictionary (copy on write) instead of holding a copy (10,000
    /// devices of a 10-signal product: about 12 MB less).
    private struct ProductEntry {
        var product: Product
        var signals: [String: Signal]

        init(_ product: Product) {
            self.product = product
            signals = Device.signalsByName(product.signals)
        }
    }

    private let registry: any RegistryStore
    private let clock: any IoTClock
    private let ttlMillis: Int64
    private let negativeTTLMillis: Int64
    private let state = Mutex(State())
    /// Serialises registrations so two messages of a new device do not race each other's signals.
    private let registration = RegistrationGate()

    init(registry: any RegistryStore, clock: any IoTClock, ttlMillis: Int64, negativeTTLMillis: Int64) {
        self.registry = registry
        self.clock = clock
        self.ttlMillis = ttlMillis
        self.negativeTTLMillis = negativeTTLMillis
    }

    /// The cached tenant, checked against `now` (the clock's time, read here when the caller has not).
    func cachedTenant(_ id: TenantID, now: Int64? = nil) -> Lookup<Tenant> {
        let now = now ?? clock.now()
        let (found, read) = state.withLock { s -> (Lookup<Tenant>, Bool) in
            guard let c = s.tenants[id] else { return (.miss, false) }
            // Only a tenant that exists has its revision read (no store is asked about an arbitrary id).
            let read =
                c.value != nil && s.revisions[id, default: RevisionWatch()].startRead(now: now, lifetime: ttlMillis)
            return (lookup(c, s, tenant: id, now: now), read)
        }
        if read { Task { await readRevision(of: id, startedAt: now) } }
        return found
    }

    /// Reads `tenant`'s registry revision now and waits for it (tests; ``cachedTenant(_:now:)`` does it by
    /// itself).
    func readRevision(of tenant: TenantID) async {
        let now = clock.now()
        state.withLock {
            _ = $0.revisions[tenant, default: RevisionWatch()].startRead(now: now, lifetime: 0, force: true)
        }
        await readRevision(of: tenant, startedAt: now)
    }

    /// Reads `tenant`'s registry revision (``RevisionWatch``).
    private func readRevision(of tenant: TenantID, startedAt: Int64) async {
        let value = (try? await registry.registryRevision(of: tenant)) ?? nil
        let returned = clock.now()
        state.withLock { $0.revisions[tenant]?.finishRead(value, startedAt: startedAt, returnedAt: returned) }
    }

    /// The cached device, checked against `now` (the clock's time, read here when the caller has not).
    func cachedDevice(_ id: DeviceIdentity, now: Int64? = nil) -> Lookup<ResolvedDevice> {
        let now = now ?? clock.now()
        return state.withLock { s in
            guard let c = s.devices[id] else { return .miss }
            return lookup(c, s, tenant: id.tenant, now: now)
        }
    }

    private func lookup<T>(_ c: Cached<T>, _ s: State, tenant: TenantID, now: Int64) -> Lookup<T> {
        if let v = c.value { return fresh(c, s, tenant: tenant, now: now) ? .hit(v) : .miss }
        return now - c.loadedAt < negativeTTLMillis ? .absent : .miss
    }

    /// Whether a known entry may be used: within the lifetime, or vouched for by its tenant's revision.
    private func fresh<T>(_ c: Cached<T>, _ s: State, tenant: TenantID, now: Int64) -> Bool {
        now - c.loadedAt < ttlMillis
            || s.revisions[tenant]?.vouches(for: c.loadedAt, now: now, lifetime: ttlMillis) == true
    }

    func tenant(_ id: TenantID) async throws -> Tenant? {
        switch cachedTenant(id) {
        case .hit(let t): return t
        case .absent: return nil
        case .miss:
            let started = clock.now()
            let t = try await registry.tenant(id)
            state.withLock { $0.tenants[id] = Cached(value: t, loadedAt: started) }
            return t
        }
    }

    func device(_ id: DeviceIdentity) async throws -> ResolvedDevice? {
        switch cachedDevice(id) {
        case .hit(let d): return d
        case .absent: return nil
        case .miss: return try await load(id)
        }
    }

    private func load(_ id: DeviceIdentity) async throws -> ResolvedDevice? {
        let scope = AccessScope.tenant(id.tenant)
        // As old as the oldest reading it is made of (its product's may be older than the device's).
        var loadedAt = clock.now()
        var resolved: ResolvedDevice?
        if let device = try await registry.device(scope, uid: id.deviceUID) {
            let (entry, productLoadedAt) = try await product(device.product, tenant: id.tenant)
            loadedAt = min(loadedAt, productLoadedAt)
            let product = entry?.product
            resolved = ResolvedDevice(
                device: device, signals: device.effectiveSignals(over: entry?.signals ?? [:]), parser: product?.parser,
                gateway: device.gatewayScope(product: product))
        }
        let now = clock.now()
        state.withLock { s in
            if s.devices[id] == nil, s.devices.count >= Self.maxCachedDevices { Self.trim(&s, now: now, self) }
            s.devices[id] = Cached(value: resolved, loadedAt: loadedAt)
        }
        return resolved
    }

    /// A product from the cache (within the lifetime, or vouched for by the tenant's revision) or the registry,
    /// with when its lookup started; an unknown product is remembered as unknown for the same time.
    private func product(_ id: ProductID, tenant: TenantID) async throws -> (ProductEntry?, loadedAt: Int64) {
        let key = ProductKey(tenant: tenant, product: id)
        let now = clock.now()
        let cached = state.withLock { s -> Cached<ProductEntry>? in
            guard let c = s.products[key], fresh(c, s, tenant: tenant, now: now) else { return nil }
            return c
        }
        if let cached { return (cached.value, cached.loadedAt) }
        let product = try await registry.product(.tenant(tenant), id: id).map(ProductEntry.init)
        state.withLock { s in
            if s.products[key] == nil, s.products.count >= Self.maxCachedDevices {
                s.products = s.products.filter { now - $0.value.loadedAt < ttlMillis }
            }
            s.products[key] = Cached(value: product, loadedAt: now)
        }
        return (product, now)
    }

    /// Registers a device under `product` (if it is still unknown) and returns it.
    func register(_ id: DeviceIdentity, product: ProductID) async throws -> ResolvedDevice {
        try await registration.run {
            if let existing = try await self.load(id) { return existing }
            let scope = AccessScope.tenant(id.tenant)
            guard try await self.registry.product(scope, id: product) != nil else {
                throw IoTError(
                    .unknownDevice,
                    "device \(id) is not registered and the tenant's auto-registration product '\(product)' does not exist; create the product or register the device"
                )
            }
            let device = Device(uid: id.deviceUID, product: product, createdAt: self.clock.now())
            try await self.registry.saveDevice(scope, device)
            guard let loaded = try await self.load(id) else {
                throw IoTError(.storage, "device \(id) was registered but cannot be read back")
            }
            return loaded
        }
    }

    /// Adds signals to a device (auto-registration of unknown signals) and returns the device.
    func addSignals(_ id: DeviceIdentity, _ signals: [Signal]) async throws -> ResolvedDevice {
        try await registration.run {
            let scope = AccessScope.tenant(id.tenant)
            guard var device = try await self.registry.device(scope, uid: id.deviceUID) else {
                throw IoTError(.unknownDevice, "device \(id) was deleted while registering its signals")
            }
            let product = try await self.registry.product(scope, id: device.product)
            let known = device.effectiveSignals(product: product)
            let new = signals.filter { known[$0.name] == nil }
            if !new.isEmpty {
                device.signals.append(contentsOf: new)
                try await self.registry.saveDevice(scope, device)
            }
            guard let loaded = try await self.load(id) else {
                throw IoTError(.unknownDevice, "device \(id) was deleted while registering its signals")
            }
            return loaded
        }
    }

    /// Devices (known and unknown) cached at most: a flood of messages naming new ids cannot grow the cache
    /// without bound.
    static let maxCachedDevices = 100_000

    /// Makes room in a full cache: expired entries go first, then every unknown id, then half of the rest.
    private static func trim(_ s: inout State, now: Int64, _ d: DeviceDirectory) {
        s.devices = s.devices.filter { entry in
            now - entry.value.loadedAt < (entry.value.value == nil ? d.negativeTTLMillis : d.ttlMillis)
        }
        if s.devices.count >= maxCachedDevices { s.devices = s.devices.filter { $0.value.value != nil } }
        if s.devices.count >= maxCachedDevices {
            var keep = false
            s.devices = s.devices.filter { _ in
                keep.toggle()
                return keep
            }
        }
    }

    func invalidate(tenant: TenantID, device: String?) {
        state.withLock { s in
            s.tenants[tenant] = nil
            if let device {
                s.devices[DeviceIdentity(tenant: tenant, deviceUID: device)] = nil
            } else {
                s.devices = s.devices.filter { $0.key.tenant != tenant }
                s.products = s.products.filter { $0.key.tenant != tenant }
                s.revisions[tenant] = nil
            }
        }
    }
}

/// Runs async closures one at a time.
private actor RegistrationGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        while busy { await withCheckedContinuation { waiters.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
        return try await body()
    }
}
