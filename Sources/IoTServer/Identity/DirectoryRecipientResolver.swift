public import IoTCore
public import IoTRules

/// Resolves a notification policy's recipients from the platform's users: `user:<username>`, `role:<id>` (every
/// active user of the tenant holding it) and `department:<id>` (every active user of the department's subtree)
/// become each user's address on the channel; anything else goes to `fallback` (static groups, plain addresses).
///
/// A user's address on a channel is their ``IoTCore/UserAccount/contacts`` entry for that channel name, else their
/// ``IoTCore/UserAccount/email`` on an email channel or their ``IoTCore/UserAccount/phone`` on an SMS or voice
/// channel; a user without one is skipped.
///
/// ```swift
/// let resolver = DirectoryRecipientResolver(
///     store: identityStore, emailChannels: ["ops-mail"], phoneChannels: ["sms"], fallback: StaticRecipientResolver())
/// // A policy target {channel: ops-mail, recipients: ["role:operator", "department:north"]}
/// ```
public struct DirectoryRecipientResolver: RecipientResolver {
    let store: any IdentityStore
    let emailChannels: Set<String>
    let phoneChannels: Set<String>
    let fallback: any RecipientResolver

    /// Resolves users from `store`; `emailChannels` and `phoneChannels` name the channels that take email
    /// addresses and phone numbers.
    public init(
        store: any IdentityStore, emailChannels: Set<String>, phoneChannels: Set<String>,
        fallback: any RecipientResolver = StaticRecipientResolver()
    ) {
        self.store = store
        self.emailChannels = emailChannels
        self.phoneChannels = phoneChannels
        self.fallback = fallback
    }

    public func resolve(_ recipient: String, channel: String, tenant: TenantID) async -> [String] {
        let parts = recipient.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["user", "role", "department"].contains(parts[0]) else {
            return await fallback.resolve(recipient, channel: channel, tenant: tenant)
        }
        let (kind, name) = (parts[0], parts[1])
        let users: [UserAccount]
        do {
            switch kind {
            case "user":
                users = try await store.user(name).map { $0.tenant == tenant ? [$0] : [] } ?? []
            case "role":
                users = try await store.users(tenant: tenant).filter { $0.roles.contains(name) }
            default:
                let subtree = IdentityService.subtree(of: name, in: try await store.departments(tenant: tenant))
                users = try await store.users(tenant: tenant).filter { $0.department.map(subtree.contains) ?? false }
            }
        } catch {
            return []
        }
        return users.filter { $0.status == .active }.compactMap { address(of: $0, on: channel) }
    }

    /// The user's address on `channel`, if they have one.
    func address(of user: UserAccount, on channel: String) -> String? {
        if let contact = user.contacts?[channel] { return contact }
        if emailChannels.contains(channel) { return user.email }
        if phoneChannels.contains(channel) { return user.phone }
        return nil
    }
}
