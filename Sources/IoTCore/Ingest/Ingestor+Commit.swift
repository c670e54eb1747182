import Logging
import ServiceLifecycle
import Synchronization

extension Ingestor {
    /// Replays the journal into the point store, then commits journaled messages in batches until a
    /// graceful shutdown; then it drains what is queued and returns.
    public func run() async throws {
        try await replayJournal()
        let waiting = progress.withLock { p -> [CheckedContinuation<Void, any Error>] in
            p.ready = true
            defer { p.readyWaiters = [:] }
            return Array(p.readyWaiters.values)
        }
        for waiter in waiting { waiter.resume() }
        logger.info("ingestor ready", metadata: ["journal_sequence": "\(journal.lastSequence)"])
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await commitLoop()
            } onCancel: {
                queue.close()
            }
        } onGracefulShutdown: {
            self.queue.close()
        }
        progress.withLock { $0.ready = false }
        let stats = statistics
        logger.info(
            "ingestor stopped", metadata: ["stored": "\(stats.stored)", "in_flight": "\(stats.inFlight)"])
    }

    private func replayJournal() async throws {
        // A store ahead of the journal (journal directory lost): number new entries above the store.
        var maxCommitted: UInt64 = 0
        let tenants = Set(try await registry.tenants().map(\.id))
        for tenant in tenants {
            maxCommitted = max(maxCommitted, try await pointStore.committedSequence(tenant: tenant))
        }
        if maxCommitted > journal.lastSequence {
            logger.warning(
                "the point store is ahead of the journal; continuing numbering above it",
                metadata: ["store": "\(maxCommitted)", "journal": "\(journal.lastSequence)"])
            try journal.trim(through: maxCommitted)
        }

        var entries: [JournalEntry] = []
        try journal.replay(after: 0) { entries.append($0) }
        var committed: [TenantID: UInt64] = [:]
        var pending = 0
        var deleted = 0
        for entry in entries {
            // A tenant deleted since (DELETE /api/v1/tenants/{t}) does not come back through its old entries.
            guard tenants.contains(entry.tenant) else {
                deleted += 1
                continue
            }
            if committed[entry.tenant] == nil {
                committed[entry.tenant] = try await pointStore.committedSequence(tenant: entry.tenant)
            }
            if entry.sequence > committed[entry.tenant]! {
                queue.enqueue(
                    CommitQueue.Item(
                        sequence: entry.sequence, tenant: entry.tenant, points: entry.points, transport: nil),
                    reserved: false)
                pending += 1
            }
        }
        if pending > 0 {
            logger.info("replaying journal entries not yet in the store", metadata: ["entries": "\(pending)"])
        }
        if deleted > 0 {
            logger.info("journal entries of deleted tenants skipped", metadata: ["entries": "\(deleted)"])
        }
        progress.withLock { $0.committedThrough = entries.first.map { $0.sequence - 1 } ?? journal.lastSequence }
    }

    private func commitLoop() async {
        let monotonic = ContinuousClock()
        var lastStart = monotonic.now - .seconds(1)
        var lastPoints = 0
        while var items = await queue.take(maxPoints: configuration.maxBatchPoints) {
            // Group commit: each store transaction has a fixed cost (locks, WAL frames, thread hand-offs),
            // so under a steady stream transactions start at most every `commitGather` (`heavyCommitGather`
            // once the last one was large). A small batch taken sooner than that after the previous start
            // waits out the rest of the interval and takes what came meanwhile. A message after a quiet
            // spell is committed at once.
            let gather =
                lastPoints >= configuration.heavyBatchPoints
                ? max(configuration.commitGather, configuration.heavyCommitGather) : configuration.commitGather
            var points = items.reduce(0) { $0 + $1.points.count }
            if gather > .zero && points < configuration.maxBatchPoints / 4 && monotonic.now - lastStart < gather {
                try? await monotonic.sleep(until: lastStart + gather)
                if let more = queue.takeIfAvailable(maxPoints: configuration.maxBatchPoints - points) {
                    items += more
                    points += more.reduce(0) { $0 + $1.points.count }
                }
            }
            lastStart = monotonic.now
            lastPoints = points
            var delay = configuration.storeRetryDelay.inMilliseconds
            while true {
                do {
                    let started = ContinuousClock.now
                    try await commit(items)
                    commitTimer.recordElapsed(since: started)
                    break
                } catch {
                    logger.error(
                        "point store commit failed; retrying", metadata: ["error": "\(error)", "retry_ms": "\(delay)"])
                    do {
                        try await clock.sleep(forMillis: delay)
                    } catch {
                        // Cancelled while the store is down: what is queued stays in the journal and is
                        // replayed on the next start.
                        return
                    }
                    delay = min(delay * 2, 10_000)
                }
            }
        }
        trimJournal(force: true)
    }

    private func commit(_ items: [CommitQueue.Item]) async throws {
        var order: [TenantID] = []
        var byTenant: [TenantID: PointBatch] = [:]
        var messages: [String: Int] = [:]
        var points = 0
        var replayedPoints = 0
        for item in items {
            if byTenant[item.tenant] == nil {
                order.append(item.tenant)
                byTenant[item.tenant] = PointBatch(tenant: item.tenant, points: [], journalSequence: 0)
            }
            byTenant[item.tenant]!.points.append(contentsOf: item.points)
            byTenant[item.tenant]!.journalSequence = item.sequence
            if let t = item.transport {
                messages[t, default: 0] += 1
                points += item.points.count
            } else {
                replayedPoints += item.points.count
            }
        }
        var overwritten = 0
        for tenant in order {
            overwritten += try await pointStore.writeReporting(byTenant[tenant]!).overwritten
        }
        if overwritten > 0 { accounting.overwrote(points: overwritten) }
        for tenant in order {
            for observer in observers { await observer.pointsCommitted(byTenant[tenant]!) }
        }
        queue.release(points + replayedPoints)
        accounting.committed(messages: messages, points: points)
        let through = items.last!.sequence
        let ready = progress.withLock { p -> [CheckedContinuation<Void, any Error>] in
            p.committedThrough = max(p.committedThrough, through)
            var ready: [CheckedContinuation<Void, any Error>] = []
            p.waiters.removeAll { w in
                if w.0 <= through {
                    ready.append(w.1)
                    return true
                }
                return false
            }
            return ready
        }
        for c in ready { c.resume() }
        trimJournal(force: false)
    }

    /// Lets the journal drop what the store has committed, at most once a second.
    private func trimJournal(force: Bool) {
        let now = clock.now()
        let through: UInt64? = progress.withLock { p in
            guard force || now - p.lastTrim >= 1_000 else { return nil }
            p.lastTrim = now
            return p.committedThrough
        }
        guard let through, through > 0 else { return }
        do {
            try journal.trim(through: through)
        } catch {
            logger.warning("journal trim failed (it will be retried)", metadata: ["error": "\(error)"])
        }
    }
}
