import AsyncHTTPClient
import Foundation
import KilnCore
import NIOCore

/// A bearer token and when to stop using it.
struct Token: Sendable {
    var value: String
    var expires: Date
}

/// Bearer tokens by realm, service and scope set; shared by every task of a run.
actor TokenCache {
    private var tokens = [String: Token]()

    func token(for key: String) -> Token? {
        guard let token = tokens[key], token.expires > Date() else { return nil }
        return token
    }

    func store(_ token: Token, for key: String) { tokens[key] = token }
}

extension RegistryClient {
    /// The `Authorization` header for a request needing `scopes`, or nil for an open registry.
    /// Basic: the credential itself. Bearer: a token for exactly these scopes, from the cache
    /// unless `fresh`, fetched with the credential when there is one (anonymously otherwise).
    func authorization(endpoint: Endpoint, registry: String, scopes: [String], fresh: Bool)
        async throws(RegistryError) -> String?
    {
        guard let challenge = endpoint.challenge else { return nil }
        let credential = try await configuration.credentials.credential(for: registry)
        switch challenge.scheme {
        case "basic":
            return credential?.basicAuthorization
        case "bearer":
            let sortedScopes = Array(Set(scopes)).sorted()
            let key =
                [challenge.realm ?? "", challenge.service ?? ""].joined(separator: "|") + "|"
                + sortedScopes.joined(separator: " ")
            if !fresh, let cached = await tokens.token(for: key) { return "Bearer " + cached.value }
            let token = try await fetchToken(
                challenge, scopes: sortedScopes, credential: credential,
                endpoint: endpoint, registry: registry)
            await tokens.store(token, for: key)
            return "Bearer " + token.value
        default:
            return nil
        }
    }

    /// `GET realm?service=…&scope=…` (distribution's token protocol), with Basic credentials when
    /// kiln has them: token servers quietly hand out pull-only tokens to anonymous callers.
    private func fetchToken(
        _ challenge: AuthChallenge, scopes: [String], credential: Credential?,
        endpoint: Endpoint, registry: String
    ) async throws(RegistryError) -> Token {
        let operation = "get a token for \(registry)" + (scopes.isEmpty ? "" : " (\(scopes.joined(separator: " ")))")
        guard let realm = challenge.realm, !realm.isEmpty else {
            throw .protocolViolation(
                host: registry, operation: operation, reason: "sent a Bearer challenge without a realm")
        }
        var realmURL = realm.hasPrefix("/") ? endpoint.baseURL + realm : realm
        if realmURL.hasPrefix("http://"), credential != nil {
            let realmHost = String(realmURL.dropFirst("http://".count).prefix { $0 != "/" })
            guard RegistryConfiguration.isLoopback(realmHost) || configuration.insecureHosts.contains(realmHost) else {
                throw .protocolViolation(
                    host: registry, operation: operation,
                    reason: "names a plain-HTTP token realm (\(realmHost)); kiln will not send credentials there")
            }
        }
        var query = [(String, String)]()
        if let service = challenge.service { query.append(("service", service)) }
        for scope in scopes { query.append(("scope", scope)) }
        realmURL = QueryEncoding.append(query, to: realmURL)

        // Through the one request path: retried on network errors and 408/429/5xx like any GET,
        // with the Basic credential (if any) as the only authentication.
        var request = RegistryRequest(
            method: .GET, target: .absolute(realmURL), operation: operation, scopes: [], idempotent: true)
        request.maxResponseBody = 1 << 20
        request.authentication = .given(credential?.basicAuthorization)
        let response = try await send(request, endpoint: endpoint, registry: registry)
        guard response.status == 200 else { throw response.failure(operation) }
        let body = response.body
        struct Answer: Decodable {
            var token: String?
            var accessToken: String?
            var expiresIn: Int?

            enum CodingKeys: String, CodingKey {
                case token
                case accessToken = "access_token"
                case expiresIn = "expires_in"
            }
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)),
            let value = answer.token ?? answer.accessToken, !value.isEmpty
        else {
            throw .protocolViolation(host: registry, operation: operation, reason: "token server sent no token")
        }
        // A missing or tiny lifetime means 60 s (the token spec's default); refresh 10 s early.
        let lifetime = max(answer.expiresIn ?? 60, 60)
        return Token(value: value, expires: Date().addingTimeInterval(Double(lifetime - 10)))
    }
}
