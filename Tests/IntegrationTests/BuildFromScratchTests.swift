import Foundation
import Testing

/// Dockerfile features Debian's buildah (1.28) cannot check for us, built from scratch (no
/// registry needed) and compared with the tree Docker's rules give.
@Suite("kiln build from scratch")
struct BuildFromScratchTests {
    @Test("--exclude, --parents (with a /./ pivot), <Dockerfile>.dockerignore over .dockerignore, TARGETARCH")
    func features() throws {
        try Tools.require("umoci", package: "umoci")
        let scratch = try Scratch("build-scratch")
        let context = try scratch.sub("context")
        let files = ["src/a/b/one.py", "src/a/two.pyc", "src/tests/t.py", "keep.txt", "secret.txt", "amd64.txt"]
        for path in files {
            try FileManager.default.createDirectory(
                atPath: context + "/" + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try path.write(toFile: context + "/" + path, atomically: false, encoding: .utf8)
        }
        // The root .dockerignore would hide keep.txt; the Dockerfile's own ignore file wins.
        try "keep.txt\n".write(toFile: context + "/.dockerignore", atomically: false, encoding: .utf8)
        let dockerfile = scratch.path + "/app.Dockerfile"
        try "secret.txt\n".write(toFile: dockerfile + ".dockerignore", atomically: false, encoding: .utf8)
        try """
        FROM scratch
        ARG TARGETARCH
        COPY --exclude=*.pyc --exclude=tests src/a src/tests /app/
        COPY --parents src/a/b/one.py /p/
        COPY --parents src/./a/b/one.py /q/
        COPY keep.txt ${TARGETARCH}.txt /
        """.write(toFile: dockerfile, atomically: false, encoding: .utf8)
        let layout = scratch.path + "/layout"
        let built = try Tools.kiln([
            "build", "-f", dockerfile, "--platform", "linux/amd64", "-o", "oci:\(layout):v1", context,
        ])
        try #require(built.status == 0, "\(built.stderr)")
        let unpacked = try Tools.run(["umoci", "unpack", "--image", "\(layout):v1", scratch.path + "/bundle"])
        try #require(unpacked.status == 0, "\(unpacked.stderr)")
        let tree = try Tools.shell("cd '\(scratch.path)/bundle/rootfs' && find . -mindepth 1 | LC_ALL=C sort").stdout
        #expect(
            tree.split(separator: "\n") == [
                "./amd64.txt", "./app", "./app/b", "./app/b/one.py", "./app/t.py", "./keep.txt", "./p", "./p/src",
                "./p/src/a",
                "./p/src/a/b", "./p/src/a/b/one.py", "./q", "./q/a", "./q/a/b", "./q/a/b/one.py",
            ])

        try "FROM scratch\nCOPY secret.txt /\n".write(toFile: dockerfile, atomically: false, encoding: .utf8)
        let refused = try Tools.kiln(["build", "-f", dockerfile, "-o", "oci:\(layout):v2", context])
        #expect(refused.status == 2)
        #expect(
            Tools.oneLine(refused).contains(
                "'secret.txt' is not in the build context (it is excluded by app.Dockerfile.dockerignore)"))
    }
}
