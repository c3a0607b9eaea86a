/// What answers the client's HTTP exchanges when not the network: an in-memory registry, so a
/// test runs the lane, every request it sends included, in-process. Every exchange still goes
/// through the client's one request path (authentication, retries, redirects, body limits);
/// only the bytes on the wire are skipped.
package protocol RegistryTransport: Sendable {
    /// Answers one exchange. A thrown error stands for a failed connection.
    func respond(to request: TransportRequest) async throws -> TransportResponse
}

/// One HTTP request as the client would send it.
package struct TransportRequest: Sendable {
    package var method: String
    /// The full URL, query included.
    package var url: String
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    /// The first value of the header `name` (case-insensitive).
    package func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// One HTTP response.
package struct TransportResponse: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}
