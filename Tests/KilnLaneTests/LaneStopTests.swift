import KilnProcessors
import KilnRegistry
import Testing

@testable import KilnLane

@Suite("LaneStop: a failure every processor would meet stops the ones not yet started")
struct LaneStopTests {
    static let ref = ProcessorRef(parsing: "a/b@1")!

    static let failure = RegistryError.Failure(
        operation: "push", method: "PUT", url: "https://ghcr.io/v2/a/b/manifests/1", status: 401)

    @Test(
        "which failures stop the lane",
        arguments: [
            (RegistryError.connection(host: "ghcr.io", operation: "x", reason: "refused"), true),
            (.unknownHost("ghcr.io"), true),
            (.tls(host: "ghcr.io", reason: "unknown authority"), true),
            (.unauthorized(failure), true),
            (.credentials("helper failed"), true),
            (.connection(host: "docker.io", operation: "pull base", reason: "refused"), false),  // a base's registry
            (.http(failure), false),
            (.notFound("no arm64 in the index"), false),
        ])
    func stops(error: RegistryError, stops: Bool) {
        let stop = LaneStop()
        stop.watch(["ghcr.io"])
        stop.note(error, ref: Self.ref)
        #expect((stop.reason != nil) == stops, "\(error)")
        if stops { #expect(stop.reason?.hasPrefix("a/b@1 found that ") == true) }
    }

    @Test("the first failure is the one kept")
    func first() {
        let stop = LaneStop()
        stop.watch(["ghcr.io"])
        stop.note(RegistryError.unknownHost("ghcr.io"), ref: Self.ref)
        stop.note(RegistryError.credentials("later"), ref: Self.ref)
        #expect(stop.reason?.contains("does not resolve") == true)
    }
}
