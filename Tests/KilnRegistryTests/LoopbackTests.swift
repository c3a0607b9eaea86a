import KilnRegistry
import Testing

struct LoopbackTests {
    @Test(
        "loopback hosts are recognised with and without ports",
        arguments: [
            ("localhost", true), ("localhost:5000", true), ("127.0.0.1:80", true), ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("ghcr.io", false), ("10.0.0.1:5000", false), ("localhost.example.com", false), ("[::2]", false),
        ])
    func loopback(host: String, expected: Bool) {
        #expect(RegistryConfiguration.isLoopback(host) == expected)
    }
}
