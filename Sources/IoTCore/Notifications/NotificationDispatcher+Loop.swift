import Logging
import Metrics

extension NotificationDispatcher {
    enum Decision {
        case wait(until: Int64)
        case send([OutboxMessage])
    }

    /// One pass: claim what is due, start what may go; returns when to look again.
    func step(start: (LaneKey, [OutboxMessage]) -> Void) async -> Int64 {
        await refreshTenants(force: false)
        await claim()
        let now = clock.now()
        var wake = now + max(1, configuration.pollInterval.inMilliseconds)
        for (key, lane) in lanes where !lane.inFlight && !lane.queue.isEmpty {
            switch decide(lane, channel: key.channel, now: now) {
            case .wait(let until):
                wake = min(wake, until)
            case .send(let batch):
                lane.inFlight = true
                lane.queue.removeFirst(batch.count)
                start(key, batch)
            }
        }
        lanes = lanes.filter { key, lane in
            !lane.queue.isEmpty || lane.inFlight
                || (lane.sends.last ?? .min) > now - configuration.policy(key.channel).digestWindow.inMilliseconds
        }
        return wake
    }

    func refreshTenants(force: Bool) async {
        let now = clock.now()
        guard force || now - lastTenantRefresh >= configuration.tenantRefreshInterval.inMilliseconds else { return }
        lastTenantRefresh = now
        do {
            for t in try await tenantSource() where !tenants.contains(t) { tenants.append(t) }
        } catch {
            logger.error("cannot list tenants for notification delivery", metadata: ["error": "\(error)"])
        }
    }

    /// Claims every due message (up to ``Configuration/maxHeld`` in memory), so a lane decides on all
    /// that is waiting: a storm goes into one digest, not several.
    func claim() async {
        for tenant in tenants {
            let scope = AccessScope.tenant(tenant)
            do {
                if !released.contains(tenant) {
                    // Claims left by a process that crashed mid-send: deliver them again (at least once).
                    let n = try await outbox.releaseClaims(scope)
                    if n > 0 {
                        logger.notice(
                            "re-queued notifications claimed before a restart",
                            metadata: ["tenant": "\(tenant)", "count": "\(n)"])
                    }
                    released.insert(tenant)
                }
                while true {
                    let room = min(configuration.batchSize, configuration.maxHeld - held)
                    guard room > 0 else { return }
                    let batch = try await outbox.claimDue(scope, now: clock.now(), limit: room)
                    for m in batch {
                        let key = LaneKey(tenant: tenant, channel: m.channel, recipient: m.recipient)
                        let lane =
                            lanes[key] ?? Lane(tokens: configuration.policy(m.channel).capacity, now: clock.now())
                        lanes[key] = lane
                        lane.queue.append(m)
                        held += 1
                    }
                    if batch.count < room { break }
                }
            } catch {
                logger.error("cannot read the outbox", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            }
        }
    }

    /// Whether a lane sends now (one message, or a digest of all it holds) or waits.
    func decide(_ lane: Lane, channel: String, now: Int64) -> Decision {
        let policy = configuration.policy(channel)
        if let perMinute = policy.messagesPerMinute, perMinute > 0 {
            let rate = Double(perMinute) / 60_000
            lane.tokens = min(policy.capacity, lane.tokens + Double(now - lane.refilledAt) * rate)
            lane.refilledAt = now
            if lane.tokens < 1 { return .wait(until: now + Int64(((1 - lane.tokens) / rate).rounded(.up))) }
        }
        let window = policy.digestWindow.inMilliseconds
        lane.sends.removeAll { $0 <= now - window }
        if let due = lane.digestDue {
            guard now >= due else { return .wait(until: due) }
            lane.digestDue = nil
            // A message with attachments or an HTML body (a report) goes alone; a digest holds the plain text
            // messages before it.
            let plain = lane.queue.prefix { $0.attachments.isEmpty && $0.format == .text }
            return .send(plain.isEmpty ? [lane.queue[0]] : Array(plain))
        }
        if policy.digestThreshold > 0, lane.sends.count >= policy.digestThreshold {
            let due = lane.sends[0] + window
            lane.digestDue = due
            return .wait(until: due)
        }
        return .send([lane.queue[0]])
    }

    /// Sends one message or a digest (off the actor) and records the outcome.
    func deliver(_ key: LaneKey, _ batch: [OutboxMessage]) async {
        var failure: (any Error)?
        if let notifier = notifiers[key.channel] {
            let started = ContinuousClock.now
            do {
                try await notifier.send(notification(key, batch))
            } catch {
                failure = error
            }
            Timer(
                label: "iot_notification_delivery_seconds",
                dimensions: [("channel", key.channel), ("result", failure == nil ? "sent" : "failed")],
                preferredDisplayUnit: .seconds
            ).recordElapsed(since: started)
        } else {
            failure = IoTError(
                .invalidArgument,
                "no notifier is configured for channel \"\(key.channel)\"; add it to the dispatcher's notifiers (iotd.yaml notifications.channels)"
            )
        }
        await completed(key, batch, failure: failure)
    }

    func notification(_ key: LaneKey, _ batch: [OutboxMessage]) -> Notification {
        if batch.count == 1 {
            let m = batch[0]
            return Notification(
                id: m.id, channel: m.channel, recipient: m.recipient, subject: m.subject, body: m.body,
                tenant: key.tenant, format: m.format, attachments: m.attachments)
        }
        let listed = batch.prefix(max(1, configuration.digestMaxListed))
        var body =
            "\(batch.count) notifications:\n\n"
            + listed.map { m in m.subject.map { "\($0)\n" + m.body } ?? m.body }.joined(separator: "\n\n")
        if batch.count > listed.count { body += "\n\n… and \(batch.count - listed.count) more" }
        let first = batch[0].subject ?? String(batch[0].body.prefix(60))
        return Notification(
            id: "digest-" + batch[0].id, channel: key.channel, recipient: key.recipient,
            subject: "\(batch.count) notifications: \(first) …", body: body, tenant: key.tenant,
            messageIDs: batch.map(\.id))
    }

    func completed(_ key: LaneKey, _ batch: [OutboxMessage], failure: (any Error)?) async {
        let now = clock.now()
        let scope = AccessScope.tenant(key.tenant)
        let policy = configuration.policy(key.channel)
        var s = stats[key.channel] ?? ChannelStatistics()
        let dims = [("channel", key.channel)]
        do {
            if let failure {
                let error = failure as? IoTError
                let reason = error?.message ?? "\(failure)"
                let permanent =
                    error.map { [.unauthorized, .forbidden, .invalidArgument, .notFound].contains($0.code) } ?? false
                for m in batch {
                    s.failed += 1
                    Counter(label: "iot_notifications_failed_total", dimensions: dims).increment()
                    let attempts = m.attempts + 1
                    let maxAttempts = policy.maxAttempts ?? configuration.maxAttempts
                    if permanent || attempts >= maxAttempts {
                        let why =
                            permanent
                            ? "\(key.channel) refused the message (\(error!.code.name)): \(reason)"
                            : "gave up after \(attempts) attempts; last error: \(reason)"
                        try await outbox.markDeadLetter(scope, id: m.id, error: why)
                        s.deadLettered += 1
                        Counter(label: "iot_notifications_dead_lettered_total", dimensions: dims).increment()
                        logger.warning(
                            "notification dead-lettered",
                            metadata: ["id": "\(m.id)", "channel": "\(key.channel)", "reason": "\(why)"])
                    } else {
                        try await outbox.markFailed(
                            scope, id: m.id, error: reason,
                            nextAttemptAt: now + configuration.backoff(afterAttempts: attempts))
                        s.retried += 1
                        Counter(label: "iot_notifications_retried_total", dimensions: dims).increment()
                    }
                }
            } else {
                for m in batch { try await outbox.markDelivered(scope, id: m.id, at: now) }
                s.sent += batch.count
                s.deliveries += 1
                Counter(label: "iot_notifications_sent_total", dimensions: dims).increment(by: batch.count)
                if batch.count > 1 {
                    s.digests += 1
                    Counter(label: "iot_notifications_digests_total", dimensions: dims).increment()
                }
            }
        } catch {
            logger.error(
                "cannot record a notification outcome in the outbox; the message is delivered again after a restart",
                metadata: ["channel": "\(key.channel)", "error": "\(error)"])
        }
        stats[key.channel] = s
        if let lane = lanes[key] {
            lane.inFlight = false
            if failure == nil {
                lane.sends.append(now)
                // After a digest the storm is taken to go on: what arrives within the next window waits for
                // the next digest instead of going out one by one.
                if batch.count > 1 {
                    lane.sends += Array(repeating: now, count: max(0, policy.digestThreshold - 1))
                }
            }
            if let perMinute = policy.messagesPerMinute, perMinute > 0 { lane.tokens -= 1 }
        }
        held -= batch.count
        wake()
    }

    func waitForWake(until deadline: Int64) async {
        if woken {
            woken = false
            return
        }
        let clock = self.clock
        let timer = Task { [weak self] in
            try? await clock.sleep(until: deadline)
            await self?.wake()
        }
        await withCheckedContinuation { c in waiter = c }
        woken = false
        timer.cancel()
    }

    /// Puts messages held in memory back in the outbox (pending) at shutdown.
    func releaseHeld() async {
        for tenant in Set(lanes.keys.map(\.tenant)) {
            _ = try? await outbox.releaseClaims(.tenant(tenant))
        }
        lanes = [:]
        held = 0
    }
}
