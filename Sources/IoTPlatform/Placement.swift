import Foundation
import IoTCore
import IoTPostgres
import Synchronization

/// The work of one kind every instance of a cluster knows (Modbus devices, CoAP observations), each item run
/// by the instance ``ClusterOwnership`` names for `kind/id`, and the statuses the other instances published of
/// theirs. Nothing runs until the first ownership is known, so no item runs on two instances at start.
final class Placement<Spec: Sendable & Equatable, Status: Sendable & Codable>: Sendable {
    struct Item: Sendable {
        var tenant: TenantID
        var spec: Spec
    }

    private struct State {
        var items: [String: Item] = [:]
        var ownership: ClusterOwnership?
        var remote: [String: (status: Status, instance: String)] = [:]
    }

    let kind: String
    private let state = Mutex(State())

    init(kind: String) { self.kind = kind }

    private static func owner(_ o: ClusterOwnership?, _ kind: String, _ id: String, _ tenant: TenantID) -> String? {
        o?.owner(tenant: tenant, key: kind + "/" + id)
    }

    /// Whether `o` gives `id` to its own instance; `false` before the first ownership is known.
    private static func isLocal(_ o: ClusterOwnership?, _ kind: String, _ id: String, _ tenant: TenantID) -> Bool {
        o.map { owner($0, kind, id, tenant) == $0.instance } ?? false
    }

    /// The instance that runs `id`; `nil` before the first ownership is known.
    func owner(_ id: String, tenant: TenantID) -> String? {
        state.withLock { Self.owner($0.ownership, kind, id, tenant) }
    }

    /// Whether this instance runs `id`.
    func isLocal(_ id: String, tenant: TenantID) -> Bool {
        state.withLock { Self.isLocal($0.ownership, kind, id, tenant) }
    }

    /// Records `spec` under `id`; returns whether an item was there and whether this instance runs it.
    @discardableResult
    func put(_ id: String, tenant: TenantID, _ spec: Spec) -> (existed: Bool, local: Bool) {
        state.withLock { s in
            let existed = s.items.updateValue(Item(tenant: tenant, spec: spec), forKey: id) != nil
            return (existed, Self.isLocal(s.ownership, kind, id, tenant))
        }
    }

    /// Forgets `id`; returns what was there.
    func remove(_ id: String) -> Item? {
        state.withLock { s in
            s.remote[id] = nil
            return s.items.removeValue(forKey: id)
        }
    }

    func item(_ id: String) -> Item? { state.withLock { $0.items[id] } }

    /// Every item, sorted by id.
    func items() -> [(id: String, item: Item)] {
        state.withLock { $0.items.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    /// What the instance running `id` published of it last, and that instance.
    func remoteStatus(_ id: String) -> (status: Status, instance: String)? { state.withLock { $0.remote[id] } }

    /// Sets the ownership; returns the items this instance runs from now on and those it runs no longer.
    func setOwnership(_ ownership: ClusterOwnership) -> (gained: [(String, Item)], lost: [(String, Item)]) {
        state.withLock { s in
            var gained: [(String, Item)] = []
            var lost: [(String, Item)] = []
            for (id, item) in s.items {
                let was = Self.isLocal(s.ownership, kind, id, item.tenant)
                let now = Self.isLocal(ownership, kind, id, item.tenant)
                if now && !was { gained.append((id, item)) }
                if was && !now { lost.append((id, item)) }
            }
            s.ownership = ownership
            return (gained, lost)
        }
    }

    /// Replaces the statuses other instances published (by id).
    func setRemote(_ remote: [String: (status: Status, instance: String)]) {
        state.withLock { $0.remote = remote }
    }

    /// Publishes this instance's statuses (`mine`: tenant, id on the board, status) and reads what the other
    /// instances published; `id` makes the placement id of a board entry.
    func sync(
        _ board: PostgresStatusBoard, instance: String, _ mine: [(TenantID, String, Status)],
        id: (TenantID, String) -> String
    ) async throws {
        let encoder = JSONEncoder()
        try await board.publish(
            kind: kind, instance: instance,
            mine.map { tenant, entry, status in
                PostgresStatusBoard.Entry(
                    tenant: tenant, id: entry,
                    doc: String(decoding: (try? encoder.encode(status)) ?? Data(), as: UTF8.self))
            })
        let decoder = JSONDecoder()
        var remote: [String: (status: Status, instance: String)] = [:]
        for e in try await board.entries(kind: kind) where e.instance != instance {
            if let s = try? decoder.decode(Status.self, from: Data(e.doc.utf8)) {
                remote[id(e.tenant, e.id)] = (s, e.instance)
            }
        }
        setRemote(remote)
    }
}
