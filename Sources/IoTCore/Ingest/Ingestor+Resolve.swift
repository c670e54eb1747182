import Synchronization

extension Ingestor {
    /// Resolves records into points: tenant policy, devices, signals, type conversion, server time.
    /// Throws for the whole message; never returns part of it.
    func resolve(_ records: [DeviceRecord], receivedAt: Int64, identity: DeviceIdentity) async throws(IoTError)
        -> [Point]
    {
        if records.isEmpty { return [] }
        // Everything that can refuse the message is checked before anything is registered: a refused
        // message registers no device and no signal.
        try Self.checkNamesAndTimes(records)
        do {
            guard let tenant = try await directory.tenant(identity.tenant) else {
                throw IoTError(.unknownDevice, "tenant \(identity.tenant) is not registered; create it first")
            }
            try Self.checkActive(tenant)
            // A record for another device than the sender needs a sender that is a gateway whose scope
            // covers that device: checked for every record before anything is registered.
            var sender: DeviceDirectory.ResolvedDevice??
            var known: [String: DeviceDirectory.ResolvedDevice?] = [:]
            for record in records where known[record.identificationCode] == nil {
                let code = record.identificationCode
                let id = DeviceIdentity(tenant: identity.tenant, deviceUID: code)
                let d = try await directory.device(id)
                known[code] = .some(d)
                guard !identity.deviceUID.isEmpty, code != identity.deviceUID else { continue }
                if sender == nil { sender = .some(try await directory.device(identity)) }
                var registerProduct: ProductID?
                if case .register(let p) = tenant.policy.unknownDevices { registerProduct = p }
                try Self.authorize(
                    code, product: d?.device.product ?? registerProduct, sender: sender!, identity: identity)
            }
            var devices: [String: DeviceDirectory.ResolvedDevice] = [:]
            for record in records where devices[record.identificationCode] == nil {
                let code = record.identificationCode
                guard !code.isEmpty else { throw IoTError.malformed("a record has an empty device id") }
                let id = DeviceIdentity(tenant: identity.tenant, deviceUID: code)
                if let d = known[code] ?? nil {
                    devices[code] = d
                } else if case .register(let product) = tenant.policy.unknownDevices {
                    if let limit = tenant.quotas.devices,
                        try await registry.devices(.tenant(identity.tenant), product: nil).count >= limit
                    {
                        throw TenantQuotas.exceeded("devices", limit: limit, tenant: identity.tenant)
                    }
                    devices[code] = try await directory.register(id, product: product)
                } else {
                    throw IoTError(
                        .unknownDevice,
                        "device '\(code)' is not registered in tenant \(identity.tenant); register it, or enable auto-registration for the tenant"
                    )
                }
            }
            if tenant.policy.unknownSignals == .register {
                for (code, device) in devices {
                    var new: [String: Signal] = [:]
                    for record in records where record.identificationCode == code {
                        for (name, value) in record.values where device.signals[name] == nil && new[name] == nil {
                            guard !name.isEmpty else { throw IoTError.malformed("a value has an empty signal name") }
                            new[name] = Signal(name: name, type: value.type, unit: record.units[name])
                        }
                    }
                    if !new.isEmpty {
                        if let limit = tenant.quotas.signals, device.signals.count + new.count > limit {
                            throw TenantQuotas.exceeded("signals", limit: limit, tenant: identity.tenant)
                        }
                        devices[code] = try await directory.addSignals(
                            DeviceIdentity(tenant: identity.tenant, deviceUID: code),
                            new.values.sorted { $0.name < $1.name })
                    }
                }
            }
            let points = try convert(
                records, devices: devices, tenant: identity.tenant, policy: tenant.policy, receivedAt: receivedAt)
            try admit(points.count, to: tenant)
            return points
        } catch let error as IoTError {
            throw error
        } catch {
            throw IoTError(.storage, "the registry failed while resolving devices: \(error)")
        }
    }

    /// Refuses a record for device `code` (of `product`, or `nil` when it would not be registered) unless
    /// `sender` is a gateway whose scope covers it.
    static func authorize(
        _ code: String, product: ProductID?, sender: DeviceDirectory.ResolvedDevice?, identity: DeviceIdentity
    ) throws(IoTError) {
        guard let scope = sender?.gateway else {
            throw IoTError(
                .forbidden,
                "device '\(identity.deviceUID)' sent a record for device '\(code)' but is not a gateway; a device speaks only for itself unless its product or itself is marked gateway: true"
            )
        }
        guard scope.permits(device: code, product: product) else {
            throw IoTError(
                .forbidden,
                "gateway '\(identity.deviceUID)' may not speak for device '\(code)'\(product.map { " (product \($0))" } ?? ""); add it to the gateway's gatewayFor"
            )
        }
    }

    /// Checks every device uid, signal name and device time of a message by the rules of every path
    /// (``IoTLimits``).
    static func checkNamesAndTimes(_ records: [DeviceRecord]) throws(IoTError) {
        for record in records {
            let code = record.identificationCode
            guard !code.isEmpty else { throw IoTError.malformed("a record has an empty device id") }
            do throws(IoTError) {
                try IoTLimits.checkIdentifier(code, "device uid")
                for name in record.values.keys {
                    guard !name.isEmpty else { throw IoTError.malformed("a value has an empty signal name") }
                    try IoTLimits.checkSignalName(name, "signal name of device '\(code)'")
                }
            } catch  where error.code == .invalidArgument {
                throw IoTError(.invalidValue, error.message)
            }
            if let time = record.time, time < 0 || time > IoTLimits.maxTimeMillis {
                throw IoTError(
                    .invalidValue,
                    "time \(time) of device '\(code)' is not UTC milliseconds from 1970 to \(IoTLimits.maxTimeMillis) (2^53 - 1)"
                )
            }
        }
    }

    /// ``resolve(_:receivedAt:identity:)`` from cached registry data only, on the calling thread. Returns
    /// `nil` when the tenant or a device is not cached, or when a signal would have to be registered.
    /// `sender` is the sending device when the caller has already read it from the cache (it is not looked up
    /// again for the records that name it).
    func resolveCached(
        _ records: [DeviceRecord], receivedAt: Int64, identity: DeviceIdentity, now: Int64,
        sender: DeviceDirectory.ResolvedDevice? = nil
    )
        throws(IoTError) -> [Point]?
    {
        if records.isEmpty { return [] }
        guard case .hit(let tenant) = directory.cachedTenant(identity.tenant, now: now) else { return nil }
        try Self.checkActive(tenant)
        let code = records[0].identificationCode
        if records.count == 1 || records.allSatisfy({ $0.identificationCode == code }) {
            // One device (the common case): no table of devices to build.
            guard !code.isEmpty else { throw IoTError.malformed("a record has an empty device id") }
            let device: DeviceDirectory.ResolvedDevice
            if let sender, code == identity.deviceUID {
                device = sender
            } else {
                guard
                    case .hit(let named) = directory.cachedDevice(
                        DeviceIdentity(tenant: identity.tenant, deviceUID: code), now: now)
                else { return nil }
                device = named
            }
            if code != identity.deviceUID && !identity.deviceUID.isEmpty {
                // Only gateways get here (a message of a device for another one); the sender must be cached.
                guard case .hit = directory.cachedDevice(identity, now: now) else { return nil }
                try authorizeCached([code: device], identity: identity, now: now)
            }
            if tenant.policy.unknownSignals == .register {
                for record in records {
                    for name in record.values.keys where device.signals[name] == nil { return nil }
                }
            }
            let points = try convert(
                records, device: { _ in device }, tenant: identity.tenant, policy: tenant.policy, receivedAt: receivedAt
            )
            try admit(points.count, to: tenant)
            return points
        }
        var devices: [String: DeviceDirectory.ResolvedDevice] = [:]
        for record in records where devices[record.identificationCode] == nil {
            let code = record.identificationCode
            guard !code.isEmpty else { throw IoTError.malformed("a record has an empty device id") }
            guard
                case .hit(let d) = directory.cachedDevice(
                    DeviceIdentity(tenant: identity.tenant, deviceUID: code), now: now)
            else { return nil }
            devices[code] = d
        }
        try authorizeCached(devices, identity: identity, now: now)
        if tenant.policy.unknownSignals == .register {
            for record in records {
                let signals = devices[record.identificationCode]!.signals
                for name in record.values.keys where signals[name] == nil { return nil }
            }
        }
        let points = try convert(
            records, devices: devices, tenant: identity.tenant, policy: tenant.policy, receivedAt: receivedAt)
        try admit(points.count, to: tenant)
        return points
    }

    /// Refuses every message of a suspended tenant.
    static func checkActive(_ tenant: Tenant) throws(IoTError) {
        guard tenant.status == .active else {
            throw IoTError(
                .forbidden,
                "tenant \"\(tenant.id)\" is suspended; its devices are refused until the platform's administrators resume it"
            )
        }
    }

    /// Counts `points` against the tenant's ``TenantQuotas/pointsPerDay`` of the current UTC day.
    ///
    /// - Throws: ``IoTError/Code/rateLimited`` naming the quota when the message would go over it (nothing of it
    ///   is counted then).
    func admit(_ points: Int, to tenant: Tenant) throws(IoTError) {
        guard let limit = tenant.quotas.pointsPerDay, points > 0 else { return }
        let day = clock.now() / 86_400_000
        let admitted = dailyPoints.withLock { counts -> Bool in
            var entry: (day: Int64, points: Int) = counts[tenant.id].flatMap { $0.day == day ? $0 : nil } ?? (day, 0)
            guard entry.points + points <= limit else { return false }
            entry.points += points
            counts[tenant.id] = entry
            return true
        }
        guard admitted else { throw TenantQuotas.exceeded("pointsPerDay", limit: limit, tenant: tenant.id) }
    }

    /// The gateway check of the cached path: every device other than the sender must be in the (cached)
    /// sender's scope.
    private func authorizeCached(
        _ devices: [String: DeviceDirectory.ResolvedDevice], identity: DeviceIdentity, now: Int64
    ) throws(IoTError) {
        guard !identity.deviceUID.isEmpty, devices.keys.contains(where: { $0 != identity.deviceUID }) else { return }
        var sender: DeviceDirectory.ResolvedDevice?
        if case .hit(let s) = directory.cachedDevice(identity, now: now) { sender = s }
        for (code, d) in devices where code != identity.deviceUID {
            try Self.authorize(code, product: d.device.product, sender: sender, identity: identity)
        }
    }

    private func convert(
        _ records: [DeviceRecord], devices: [String: DeviceDirectory.ResolvedDevice], tenant: TenantID,
        policy: IngestPolicy, receivedAt: Int64
    ) throws(IoTError) -> [Point] {
        try convert(records, device: { devices[$0]! }, tenant: tenant, policy: policy, receivedAt: receivedAt)
    }

    /// Converts records into points; `device` gives the resolved device of every record's identification code.
    /// A record without a device time gets a server time from ``serverStamps``: its message's `receivedAt`, or
    /// the next millisecond of its device's last server stamp (never the same time twice for one device).
    private func convert(
        _ records: [DeviceRecord], device resolved: (String) -> DeviceDirectory.ResolvedDevice, tenant: TenantID,
        policy: IngestPolicy, receivedAt: Int64
    ) throws(IoTError) -> [Point] {
        var points: [Point] = []
        points.reserveCapacity(records.reduce(0) { $0 + $1.values.count })
        for record in records {
            let device = resolved(record.identificationCode)
            let time =
                record.time
                ?? serverStamps.next(tenant: tenant, device: record.identificationCode, receivedAt: receivedAt)
            guard time >= 0 else {
                throw IoTError(
                    .invalidValue,
                    "time \(time) of device '\(record.identificationCode)' is before 1970; send UTC milliseconds")
            }
            guard time <= IoTLimits.maxTimeMillis else {
                throw IoTError(
                    .invalidValue,
                    "time \(time) of device '\(record.identificationCode)' is after \(IoTLimits.maxTimeMillis) (2^53 - 1); send UTC milliseconds"
                )
            }
            for (name, value) in record.values {
                guard let signal = device.signals[name] else {
                    if policy.unknownSignals == .ignore { continue }
                    throw IoTError(
                        .unknownSignal,
                        "signal '\(name)' is not defined for device '\(record.identificationCode)'; add it to the product or the device"
                    )
                }
                guard let converted = value.converted(to: signal.type) else {
                    throw IoTError(
                        .invalidValue,
                        "value \(value) of signal '\(name)' (device '\(record.identificationCode)') cannot be converted to \(signal.type.rawValue)"
                    )
                }
                points.append(Point(device: record.identificationCode, signal: name, time: time, value: converted))
            }
        }
        return points
    }
}
