/// A ``TokenIssuer`` that also keeps MQTT brokers in step: an issued token becomes the device's broker
/// password, a revocation removes the device's broker account.
///
/// ```swift
/// let tokens = TokenAuthenticator(credentials: credentials)
/// let issuer = ProvisioningTokenIssuer(tokens, provisioners: [mosquitto])
/// let token = try await issuer.issueToken(for: device, label: "primary", now: clock.now())
/// // the device connects to Mosquitto with username "meter-1" (the policy's template) and password `token`
/// try await issuer.revokeTokens(of: device)   // it can no longer connect, and is disconnected
/// ```
///
/// A broker keeps one password per device, so after a rotation the broker accepts only the newest token
/// (the HTTP listener accepts every unrevoked one). Revocation is done here first, then at each broker;
/// when a broker cannot be reached the error says so and a retry (revoking again) finishes the job.
/// When provisioning fails after the token was issued, the token is not returned to anyone; it stays
/// unused until the device's tokens are next revoked.
public final class ProvisioningTokenIssuer: TokenIssuer {
    /// The issuer that stores the tokens.
    public let issuer: any TokenIssuer
    /// The brokers that get each device's account.
    public let provisioners: [any BrokerProvisioner]

    /// Wraps `issuer`; `provisioners` are told about every issue and revocation, in order.
    public init(_ issuer: any TokenIssuer, provisioners: [any BrokerProvisioner]) {
        self.issuer = issuer
        self.provisioners = provisioners
    }

    /// Issues a token, then makes it the device's password at every broker.
    ///
    /// - Throws: the issuer's error, or ``IoTError`` (usually ``IoTError/Code/unavailable``) naming the
    ///   broker that could not be provisioned; issue again once it is back.
    public func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String {
        let token = try await issuer.issueToken(for: device, label: label, now: now)
        for provisioner in provisioners {
            do {
                try await provisioner.provision(device, password: token)
            } catch {
                throw IoTError(
                    error.code,
                    "the token was issued but broker \(provisioner.name) did not take it: \(error.message); issue a new token once the broker is reachable",
                    nativeCode: error.nativeCode, domain: error.nativeDomain)
            }
        }
        return token
    }

    /// Revokes every token of the device, then removes its account at every broker (also when it had no
    /// tokens left, so that a retry completes an earlier failed revocation).
    ///
    /// - Throws: the issuer's error, or ``IoTError`` naming the broker that still has the account; revoke
    ///   again to finish.
    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        let count = try await issuer.revokeTokens(of: device)
        var failures: [String] = []
        var code = IoTError.Code.unavailable
        for provisioner in provisioners {
            do {
                try await provisioner.revoke(device)
            } catch {
                failures.append("\(provisioner.name): \(error.message)")
                code = error.code
            }
        }
        guard failures.isEmpty else {
            throw IoTError(
                code,
                "the device's tokens are revoked here, but the broker still has its account (\(failures.joined(separator: "; "))); revoke again once the broker is reachable"
            )
        }
        return count
    }

    /// The issuer's list of the device's tokens.
    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        try await issuer.tokens(of: device)
    }
}
