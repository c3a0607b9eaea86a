import Foundation
import Testing

/// A self-signed certificate for 127.0.0.1 made with the openssl command, and an htpasswd file
/// made with Apache's htpasswd (bcrypt, the only kind distribution accepts).
enum TestSecrets {
    struct Certificate {
        var certificate: String
        var key: String
    }

    static func selfSignedCertificate(in directory: String, name: String = "registry") throws -> Certificate {
        try Tools.require("openssl", package: "openssl")
        let certificate = directory + "/\(name).crt"
        let key = directory + "/\(name).key"
        let result = try Tools.run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        try #require(result.status == 0, "openssl: \(result.stderr)")
        return Certificate(certificate: certificate, key: key)
    }

    static func htpasswd(in directory: String, user: String, password: String) throws -> String {
        try Tools.require("htpasswd", package: "apache2-utils")
        let path = directory + "/htpasswd"
        let result = try Tools.run(["htpasswd", "-Bbn", user, password])
        try #require(result.status == 0, "htpasswd: \(result.stderr)")
        try result.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A Docker config directory whose config.json holds `auths` for `host`.
    static func dockerConfig(in directory: String, host: String, user: String, password: String, label: String = "good")
        throws -> String
    {
        let configDirectory = directory + "/docker-config-\(label)"
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        let auth = Data("\(user):\(password)".utf8).base64EncodedString()
        try #"{"auths":{"\#(host)":{"auth":"\#(auth)"}}}"#.write(
            toFile: configDirectory + "/config.json", atomically: true, encoding: .utf8)
        return configDirectory
    }
}
