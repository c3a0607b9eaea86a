import Foundation
import Testing

/// One COPY-only Dockerfile built by kiln and by buildah on the same context and base.
struct DifferentialCase: CustomTestStringConvertible, Sendable {
    var name: String
    /// The Dockerfile after its FROM line(s); `BASE` stands for the busybox base reference.
    var dockerfile: String
    /// What buildah builds instead, where Debian's buildah (1.28) lacks the syntax: heredocs
    /// become COPYs of context files holding the bytes the heredoc must produce.
    var buildahDockerfile: String?
    var testDescription: String { name }
}

@Suite("kiln build against buildah", .serialized)
struct BuildDifferentialTests {
    static let cases: [DifferentialCase] = [
        DifferentialCase(
            name: "files, directories, globs, several sources, a followed symlink",
            dockerfile: """
                FROM BASE
                COPY app /app
                COPY docs/*.txt /docs/
                COPY notes.txt docs/a.txt /multi/
                COPY notes.txt /renamed.txt
                COPY app/lib /usr/local/lib/python/
                COPY app/link /followed
                COPY app/lib/ /bin/
                """),
        DifferentialCase(
            name: "--chmod, --chown numeric and by name",
            dockerfile: """
                FROM BASE
                COPY --chmod=0640 notes.txt /etc/notes
                COPY --chown=app:app app /home/app/src
                COPY --chown=1234:5678 --chmod=0755 docs /opt/docs
                COPY --chown=app notes.txt /home/app/
                COPY --chown=nobody:staff docs/a.txt /srv/a.txt
                """),
        DifferentialCase(
            name: "WORKDIR-relative destinations and config",
            dockerfile: """
                    FROM BASE
                    WORKDIR /srv/www
                    COPY notes.txt .
                    COPY app/lib lib/
                    WORKDIR sub
                    COPY readme.md ./
                    ENV A=1 \\
                        B="two words" PATH=/srv/bin:$PATH
                    LABEL org.example.name="kiln" version=1
                    USER app
                    EXPOSE 8000 9000/udp
                    VOLUME /data
                    STOPSIGNAL SIGINT
                """),
        DifferentialCase(
            name: "multi-stage COPY --from",
            dockerfile: """
                FROM BASE AS build
                COPY app /src
                COPY <<EOF /src/generated.txt
                made in the build stage
                EOF
                FROM BASE
                COPY --from=build /src /out
                COPY --from=build /bin/busybox /opt/busybox
                COPY --from=0 /src/main.py /main.py
                """,
            buildahDockerfile: """
                FROM BASE AS build
                COPY app /src
                COPY expected/generated.txt /src/generated.txt
                FROM BASE
                COPY --from=build /src /out
                COPY --from=build /bin/busybox /opt/busybox
                COPY --from=0 /src/main.py /main.py
                """),
        DifferentialCase(
            name: "heredoc, ARG substitution, ENTRYPOINT clears the inherited CMD",
            dockerfile: """
                FROM BASE
                ARG WHO=world
                ENV GREETING=hello
                COPY <<EOF /etc/greeting
                $GREETING ${WHO}
                EOF
                COPY --chmod=0755 <<-"RAW" /usr/bin/raw.sh
                \techo "$HOME stays literal"
                \tRAW
                ENTRYPOINT ["/bin/echo"]
                """,
            buildahDockerfile: """
                FROM BASE
                ARG WHO=world
                ENV GREETING=hello
                COPY expected/greeting /etc/greeting
                COPY --chmod=0755 expected/raw.sh /usr/bin/raw.sh
                ENTRYPOINT ["/bin/echo"]
                """),
        DifferentialCase(
            name: "CMD before ENTRYPOINT is kept; shell forms",
            dockerfile: """
                FROM BASE
                CMD echo hi
                ENTRYPOINT ["/bin/sh", "-c"]
                """),
        DifferentialCase(
            name: ".dockerignore with a re-included child",
            dockerfile: """
                FROM BASE
                COPY . /ctx/
                """),
        DifferentialCase(
            name: "RUN steps in kiln's working container: files made, changed, moved and removed; owners, modes, links",
            dockerfile: """
                FROM BASE
                COPY app /app
                RUN busybox mkdir -p /usr/bin /srv/a/b && busybox --install -s /usr/bin \\
                    && echo one > /srv/a/b/f && ln /srv/a/b/f /srv/a/hard && ln -s b/f /srv/a/soft \\
                    && chmod 4755 /srv/a/b/f && chown 1234:5678 /srv/a/b && mkfifo /srv/fifo && echo x > /tmp/gone
                RUN rm -rf /app/lib /root && rm /app/main.py /tmp/gone && echo changed >> /app/run.sh \\
                    && chmod 600 /app/run.sh && mv /srv/a/b /srv/moved && rm -rf /home/app && mkdir /home/app \\
                    && touch /home/app/new && rm /srv/a/soft && mkdir /srv/a/soft && echo 'root:x:0:' > /etc/group
                COPY notes.txt /srv/notes.txt
                RUN cat /srv/notes.txt > /srv/copy && rm /srv/a/hard && ln -s /etc /srv/etc-link && chmod 0700 /srv
                """),
        DifferentialCase(
            name: "ADD of a local tar archive",
            dockerfile: """
                FROM BASE
                ADD bundle.tar.gz /opt/bundle/
                ADD notes.txt /opt/plain/
                """),
    ]

    /// The shared context: code, docs, a symlink, an empty directory, ignored files and a tar.
    static func makeContext(at root: String) throws {
        let files: [(String, String, Int)] = [
            ("app/main.py", "print('hello')\n", 0o644), ("app/run.sh", "#!/bin/sh\necho run\n", 0o755),
            ("app/lib/util.py", "X = 1\n", 0o644), ("app/lib/__pycache__/util.pyc", "junk", 0o644),
            ("docs/a.txt", "a\n", 0o644), ("docs/b.txt", "b\n", 0o600), ("docs/c.md", "c\n", 0o644),
            ("notes.txt", "notes\n", 0o644), ("readme.md", "# readme\n", 0o644), ("debug.log", "log\n", 0o644),
            ("build/drop.txt", "drop\n", 0o644), ("build/keep/k.txt", "keep\n", 0o644),
            ("tarsrc/etc/conf", "conf\n", 0o640), ("tarsrc/bin/tool", "#!/bin/sh\n", 0o755),
            ("expected/generated.txt", "made in the build stage\n", 0o644),
            ("expected/greeting", "hello world\n", 0o644),
            ("expected/raw.sh", "echo \"$HOME stays literal\"\n", 0o644),
        ]
        for (path, text, mode) in files {
            let full = root + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: false, encoding: .utf8)
            chmod(full, mode_t(mode))
        }
        try FileManager.default.createDirectory(atPath: root + "/app/data/empty", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/app/link", withDestinationPath: "main.py")
        try ".dockerignore\n*.log\nbuild\n!build/keep\n**/__pycache__\ntarsrc\n".write(
            toFile: root + "/.dockerignore", atomically: false, encoding: .utf8)
        let tar = try Tools.shell(
            "cd '\(root)/tarsrc' && tar --owner=0 --group=0 --numeric-owner -czf ../bundle.tar.gz etc bin")
        try #require(tar.status == 0, "\(tar.stderr)")
    }

    @Test("same tree and config as buildah bud", arguments: cases)
    func sameAsBuildah(_ example: DifferentialCase) throws {
        try Tools.require("umoci", package: "umoci")
        try Tools.require("skopeo", package: "skopeo")
        let scratch = try Scratch("diff")
        let registry = try RegistryServer()
        let base = try BusyboxBase(registry: registry, scratch: scratch)
        let buildah = try Buildah(scratch: scratch)
        let context = try scratch.sub("context")
        try Self.makeContext(at: context)
        let dockerfile = scratch.path + "/case.Dockerfile"
        try example.dockerfile.replacingOccurrences(of: "BASE", with: base.reference).write(
            toFile: dockerfile, atomically: false, encoding: .utf8)
        let buildahFile = scratch.path + "/buildah.Dockerfile"
        try (example.buildahDockerfile ?? example.dockerfile).replacingOccurrences(of: "BASE", with: base.reference)
            .write(toFile: buildahFile, atomically: false, encoding: .utf8)
        let layout = scratch.path + "/layout"

        let kiln = try Tools.kiln([
            "build", "-f", dockerfile, "--platform", "linux/amd64", "-o", "oci:\(layout):kiln", context,
        ])
        try #require(kiln.status == 0, "kiln build failed: \(kiln.stderr)")
        try buildah.build(dockerfile: buildahFile, context: context, layout: layout, tag: "buildah")

        for tag in ["kiln", "buildah"] {
            let unpacked = try Tools.run(["umoci", "unpack", "--image", "\(layout):\(tag)", "\(scratch.path)/\(tag)"])
            try #require(unpacked.status == 0, "umoci unpack \(tag): \(unpacked.stderr)")
        }
        RootfsListing.removeRuntimeStubs(scratch.path + "/buildah/rootfs", absentFrom: scratch.path + "/kiln/rootfs")
        let ours = try RootfsListing.of(scratch.path + "/kiln/rootfs")
        let theirs = try RootfsListing.of(scratch.path + "/buildah/rootfs")
        if ours != theirs {
            try ours.write(toFile: scratch.path + "/kiln.txt", atomically: false, encoding: .utf8)
            try theirs.write(toFile: scratch.path + "/buildah.txt", atomically: false, encoding: .utf8)
            let diff = try Tools.run(["diff", scratch.path + "/buildah.txt", scratch.path + "/kiln.txt"])
            Issue.record("the trees differ (< buildah, > kiln):\n\(diff.stdout)")
        }
        let ourConfig = try RootfsListing.config(layout, tag: "kiln")
        let theirConfig = try RootfsListing.config(layout, tag: "buildah")
        #expect(ourConfig == theirConfig)
    }
}
