public import Logging
import Metrics
public import ServiceLifecycle

/// Delivers the ``Outbox``: claims due messages, sends them through the ``Notifier`` of their channel,
/// and records the outcome.
///
/// - **Retries**: a failure worth retrying puts the message back with exponential backoff
///   (``Configuration/initialBackoff`` doubling up to ``Configuration/maxBackoff``); after
///   ``Configuration/maxAttempts`` attempts, or at once for a permanent failure (``IoTError/Code/unauthorized``,
///   ``IoTError/Code/forbidden``, ``IoTError/Code/invalidArgument``, ``IoTError/Code/notFound``), it becomes
///   a dead letter with a readable reason.
/// - **Rate limit and storms**, per (channel, recipient), from ``ChannelPolicy``: at most
///   ``ChannelPolicy/messagesPerMinute`` (waiting messages queue in order); past
///   ``ChannelPolicy/digestThreshold`` messages in ``ChannelPolicy/digestWindow`` the rest wait
///   for the window to end and go as one digest.
/// - **Order**: the outbox does not hand out a message while an earlier one with its ordering key is
///   pending or sending, and each (channel, recipient) has one delivery in flight at a time.
/// - **Crashes**: claimed messages are `sending` in the outbox; on start (and for each tenant it
///   first sees) the dispatcher releases them, so a crash means at-least-once delivery, never loss.
///
/// ```swift
/// let dispatcher = NotificationDispatcher(outbox: outbox, notifiers: [inbox, webhook], clock: SystemClock(),
///                                         tenants: { try await registry.tenants().map(\.id) }, logger: logger)
/// let group = ServiceGroup(services: [engine, dispatcher, …], logger: logger)
/// ```
///
/// Counters (swift-metrics, label `channel`): `iot_notifications_sent_total`, `…_retried_total`,
/// `…_failed_total`, `…_dead_lettered_total`, `…_digests_total`; ``statistics()`` has the same figures. Each
/// delivery's time is the histogram `iot_notification_delivery_seconds{channel, result}`.
public actor NotificationDispatcher: Service {
    let configuration: Configuration
    let outbox: any Outbox
    let notifiers: [String: any Notifier]
    let clock: any IoTClock
    let tenantSource: @Sendable () async throws -> [TenantID]
    let logger: Logger

    var tenants: [TenantID] = []
    var released: Set<TenantID> = []
    var lanes: [LaneKey: Lane] = [:]
    var held = 0
    var stats: [String: ChannelStatistics] = [:]
    var waiter: CheckedContinuation<Void, Never>?
    var woken = false
    var lastTenantRefresh: Int64 = .min

    /// Creates a dispatcher.
    ///
    /// - Parameters:
    ///   - notifiers: one per channel name; a message for a channel without one is dead-lettered.
    ///   - tenants: the tenants whose outboxes to deliver, read at start and every
    ///     ``Configuration/tenantRefreshInterval``; ``wake(_:)`` adds one at once.
    public init(
        configuration: Configuration = Configuration(), outbox: any Outbox, notifiers: [any Notifier],
        clock: any IoTClock, tenants: @escaping @Sendable () async throws -> [TenantID], logger: Logger
    ) {
        self.configuration = configuration
        self.outbox = outbox
        self.notifiers = Dictionary(notifiers.map { ($0.channel, $0) }, uniquingKeysWith: { a, _ in a })
        self.clock = clock
        self.tenantSource = tenants
        self.logger = logger
    }

    /// The channel names that have a notifier.
    public nonisolated var channels: [String] { notifiers.keys.sorted() }

    /// Tells the dispatcher that `tenant` has new messages: it looks at once.
    public func wake(_ tenant: TenantID? = nil) {
        if let tenant, !tenants.contains(tenant) { tenants.append(tenant) }
        if let w = waiter {
            waiter = nil
            w.resume()
        } else {
            woken = true
        }
    }

    /// Per-channel counters since start, by channel name.
    public func statistics() -> [String: ChannelStatistics] { stats }

    /// Messages claimed and waiting in memory (for a rate limit, a digest or a free lane).
    public var heldCount: Int { held }

    /// Delivers until cancelled or gracefully shut down; then waits for deliveries in flight and puts
    /// messages it held back in the outbox.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
        await releaseHeld()
    }

    private func loop() async {
        await refreshTenants(force: true)
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    let wake = await step { key, batch in
                        group.addTask { await self.deliver(key, batch) }
                    }
                    if Task.isCancelled { break }
                    await waitForWake(until: wake)
                }
            }
        } onCancel: {
            Task { await self.wake() }
        }
    }
}

extension NotificationDispatcher {
    /// A (tenant, channel, recipient): one delivery in flight at a time, its own rate limit and digest.
    struct LaneKey: Hashable, Sendable {
        var tenant: TenantID
        var channel: String
        var recipient: String
    }

    final class Lane {
        var queue: [OutboxMessage] = []
        var inFlight = false
        /// Send times within the digest window.
        var sends: [Int64] = []
        /// When the waiting messages go as a digest.
        var digestDue: Int64?
        var tokens: Double
        var refilledAt: Int64

        init(tokens: Double, now: Int64) {
            self.tokens = tokens
            refilledAt = now
        }
    }
}
