import KilnCore
import Testing

@testable import KilnDockerfile

/// A compact rendering of a parsed instruction, so table rows read like the Dockerfile.
func render(_ command: Command) -> String {
    func form(_ form: CommandForm) -> String {
        switch form {
        case .exec(let words): "exec" + words.description
        case .shell(let text): "shell(\(text))"
        }
    }
    func pairs(_ pairs: [KeyValue]) -> String { pairs.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    switch command {
    case .from: return "FROM"
    case .arg(let args):
        return "ARG " + args.map { $0.name + ($0.defaultValue.map { "=\($0)" } ?? "") }.joined(separator: " ")
    case .env(let list): return "ENV " + pairs(list)
    case .label(let list): return "LABEL " + pairs(list)
    case .copy(let copy), .add(let copy):
        var text =
            (copy.from.map { "from=\($0) " } ?? "") + (copy.chown.map { "chown=\($0) " } ?? "")
            + (copy.chmod.map { "chmod=\($0) " } ?? "") + (copy.link ? "link " : "") + (copy.parents ? "parents " : "")
            + copy.excludes.map { "exclude=\($0) " }.joined()
        text += copy.sources.description + " -> " + copy.destination
        for doc in copy.heredocs {
            text += " <<\(doc.name)\(doc.expands ? "" : "(raw)"):\(doc.content.debugDescription)"
        }
        if case .add = command { return "ADD " + text }
        return "COPY " + text
    case .run(let run):
        return "RUN " + form(run.command) + run.heredocs.map { " <<\($0.name):\($0.content.debugDescription)" }.joined()
    case .workdir(let path): return "WORKDIR \(path)"
    case .user(let user): return "USER \(user)"
    case .expose(let ports): return "EXPOSE \(ports)"
    case .entrypoint(let line): return "ENTRYPOINT " + form(line)
    case .cmd(let line): return "CMD " + form(line)
    case .healthcheck(let check):
        return
            "HEALTHCHECK \(check.test) i=\(check.interval) t=\(check.timeout) s=\(check.startPeriod) r=\(check.retries)"
    case .stopSignal(let signal): return "STOPSIGNAL \(signal)"
    case .volume(let paths): return "VOLUME \(paths)"
    case .shell(let words): return "SHELL \(words)"
    case .onBuild(let trigger): return "ONBUILD \(trigger)"
    case .maintainer(let name): return "MAINTAINER \(name)"
    }
}

func renderAll(_ file: Dockerfile) -> [String] {
    var lines = file.globalArgs.map { "global " + render($0.command) }
    for stage in file.stages {
        lines.append(
            "FROM \(stage.base)" + (stage.platform.map { " platform=\($0)" } ?? "")
                + (stage.name.map { " AS \($0)" } ?? ""))
        lines += stage.instructions.map { "\($0.location.line): " + render($0.command) }
    }
    return lines
}

struct ParseCase: CustomTestStringConvertible, Sendable {
    var name: String
    var text: String
    var expected: [String]
    var testDescription: String { name }
}

@Suite("Dockerfile parser")
struct ParserTests {
    static let cases: [ParseCase] = [
        ParseCase(
            name: "indented lines, any case, comments",
            text: """
                    # a comment
                    from busybox
                    copy a.txt /a.txt
                      Env   A=1
                """,
            expected: ["FROM busybox", "3: COPY [\"a.txt\"] -> /a.txt", "4: ENV A=1"]),
        ParseCase(
            name: "continuations with comments and blank lines inside",
            text: """
                FROM scratch
                ENV A=1 \\
                # a comment inside

                    B="two words" \\
                    C=3
                COPY a \\
                     b /dst/
                """,
            expected: ["FROM scratch", "2: ENV A=1 B=\"two words\" C=3", "7: COPY [\"a\", \"b\"] -> /dst/"]),
        ParseCase(
            name: "escape directive uses a backtick",
            text: """
                # escape=`
                FROM scratch
                COPY a `
                  b C:\\dst\\
                """,
            expected: ["FROM scratch", "3: COPY [\"a\", \"b\"] -> C:\\dst\\"]),
        ParseCase(
            name: "a directive after a comment is a comment",
            text: """
                # hello
                # escape=`
                FROM scratch
                ENV A=1 \\
                  B=2
                """,
            expected: ["FROM scratch", "4: ENV A=1 B=2"]),
        ParseCase(
            name: "syntax directive and global args",
            text: """
                # syntax=docker/dockerfile:1
                ARG BASE=alpine VERSION
                FROM ${BASE}:$VERSION AS Build
                ARG VERSION
                FROM --platform=$BUILDPLATFORM build
                """,
            expected: [
                "global ARG BASE=alpine VERSION", "FROM ${BASE}:$VERSION AS build", "4: ARG VERSION",
                "FROM build platform=$BUILDPLATFORM",
            ]),
        ParseCase(
            name: "exec and shell forms",
            text: """
                FROM scratch
                CMD ["uvicorn", "app:app", "--port", "8000"]
                ENTRYPOINT /bin/run --flag
                CMD [not json
                SHELL ["/bin/bash", "-c"]
                """,
            expected: [
                "FROM scratch", "2: CMD exec[\"uvicorn\", \"app:app\", \"--port\", \"8000\"]",
                "3: ENTRYPOINT shell(/bin/run --flag)", "4: CMD shell([not json)", "5: SHELL [\"/bin/bash\", \"-c\"]",
            ]),
        ParseCase(
            name: "heredocs",
            text: """
                FROM scratch
                COPY <<EOF /etc/motd
                hello $NAME
                EOF
                COPY <<-"END" <<TWO /dir/
                \tline
                \tEND
                two
                TWO
                RUN <<EOF
                echo hi
                EOF
                """,
            expected: [
                "FROM scratch", "2: COPY [] -> /etc/motd <<EOF:\"hello $NAME\\n\"",
                "5: COPY [] -> /dir/ <<END(raw):\"line\\n\" <<TWO:\"two\\n\"",
                "10: RUN shell(<<EOF) <<EOF:\"echo hi\\n\"",
            ]),
        ParseCase(
            name: "COPY flags and JSON form",
            text: """
                FROM scratch AS a
                FROM a
                COPY --from=a --chown=app:app --chmod=0755 --link --exclude=*.pyc --exclude=tests ["src dir", "/app/"]
                ADD --chown=1000 app.tar.gz /opt/
                COPY --parents ./x/y.txt /out/
                """,
            expected: [
                "FROM scratch AS a", "FROM a",
                "3: COPY from=a chown=app:app chmod=0755 link exclude=*.pyc exclude=tests [\"src dir\"] -> /app/",
                "4: ADD chown=1000 [\"app.tar.gz\"] -> /opt/", "5: COPY parents [\"./x/y.txt\"] -> /out/",
            ]),
        ParseCase(
            name: "ENV and LABEL forms",
            text: """
                FROM scratch
                ENV PATH /usr/local/bin:$PATH
                ENV A="x y" B='$z' C=x\\ y
                LABEL org.opencontainers.image.title="kiln test" version=1
                """,
            expected: [
                "FROM scratch", "2: ENV PATH=/usr/local/bin:$PATH", "3: ENV A=\"x y\" B='$z' C=x\\ y",
                "4: LABEL org.opencontainers.image.title=\"kiln test\" version=1",
            ]),
        ParseCase(
            name: "HEALTHCHECK over two lines, and the other instructions",
            text: """
                    FROM scratch
                    HEALTHCHECK --interval=10s --timeout=3s --retries=5 --start-period=1m30s \\
                        CMD curl -sf http://localhost:8000/healthz || exit 1
                    HEALTHCHECK NONE
                    HEALTHCHECK CMD ["/bin/check"]
                    EXPOSE 8000 9000/udp
                    VOLUME /data /cache
                    VOLUME ["/logs"]
                    USER app:app
                    WORKDIR /tool
                    STOPSIGNAL SIGTERM
                    ONBUILD COPY . /app
                    MAINTAINER someone
                """,
            expected: [
                "FROM scratch",
                "2: HEALTHCHECK [\"CMD-SHELL\", \"curl -sf http://localhost:8000/healthz || exit 1\"] i=10000000000 t=3000000000 s=90000000000 r=5",
                "4: HEALTHCHECK [\"NONE\"] i=0 t=0 s=0 r=0", "5: HEALTHCHECK [\"CMD\", \"/bin/check\"] i=0 t=0 s=0 r=0",
                "6: EXPOSE [\"8000\", \"9000/udp\"]", "7: VOLUME [\"/data\", \"/cache\"]", "8: VOLUME [\"/logs\"]",
                "9: USER app:app", "10: WORKDIR /tool", "11: STOPSIGNAL SIGTERM", "12: ONBUILD COPY . /app",
                "13: MAINTAINER someone",
            ]),
        ParseCase(
            name: "RUN is parsed (and left for an executor)",
            text: """
                FROM python:3.11-slim
                RUN --mount=type=cache,target=/root/.cache pip install \\
                    fastapi
                """,
            expected: ["FROM python:3.11-slim", "2: RUN shell(pip install     fastapi)"]),
    ]

    @Test("parses", arguments: cases)
    func parses(_ example: ParseCase) throws {
        let file = try Dockerfile(parsing: example.text)
        #expect(renderAll(file) == example.expected)
    }

    struct ErrorCase: CustomTestStringConvertible, Sendable {
        var text: String
        var location: String
        var message: String
        var testDescription: String { message }
    }

    static let errors: [ErrorCase] = [
        ErrorCase(
            text: "FROM scratch\n  COPPY a /b\n", location: "Dockerfile:2:3",
            message: "unknown instruction 'COPPY' (did you mean COPY?)"),
        ErrorCase(
            text: "COPY a /b\nFROM scratch\n", location: "Dockerfile:1:1",
            message: "expected FROM: only ARG may come before the first FROM"),
        ErrorCase(text: "# nothing\n", location: "Dockerfile:1", message: "the file has no FROM instruction"),
        ErrorCase(
            text: "FROM scratch\nCOPY --form=x a /b\n", location: "Dockerfile:2:6",
            message: "unknown flag --form (COPY accepts --chmod, --chown, --exclude, --from, --link, --parents)"),
        ErrorCase(
            text: "FROM scratch\nCOPY onlyone\n", location: "Dockerfile:2:6",
            message: "COPY needs at least one source and a destination, e.g. COPY src/ /app/"),
        ErrorCase(
            text: "FROM scratch\nENV A=1 B\n", location: "Dockerfile:2:9",
            message: "ENV takes KEY=VALUE pairs; 'B' has no '='"),
        ErrorCase(
            text: "FROM scratch\nSHELL /bin/bash -c\n", location: "Dockerfile:2:7",
            message: "SHELL takes a JSON array, e.g. SHELL [\"/bin/bash\", \"-c\"]"),
        ErrorCase(
            text: "FROM scratch\nHEALTHCHECK --interval=10 CMD true\n", location: "Dockerfile:2:13",
            message: "--interval takes a duration such as 30s, 1m30s or 500ms, not '10'"),
        ErrorCase(
            text: "FROM scratch\nHEALTHCHECK curl x\n", location: "Dockerfile:2:13",
            message: "HEALTHCHECK expects CMD followed by a command, or NONE"),
        ErrorCase(
            text: "FROM scratch AS a b\n", location: "Dockerfile:1:14",
            message: "FROM takes an image and an optional 'AS name', e.g. FROM python:3.11-slim AS build"),
        ErrorCase(
            text: "FROM scratch AS a\nFROM scratch AS A\n", location: "Dockerfile:2:1",
            message: "a stage named 'a' already exists"),
        ErrorCase(
            text: "FROM scratch\nCOPY <<EOF /x\nnever closed\n", location: "Dockerfile:2",
            message: "heredoc 'EOF' opened here is never closed (expected a line reading 'EOF')"),
        ErrorCase(
            text: "FROM scratch\nCOPY <<EOF /x\n  body\n  EOF\n", location: "Dockerfile:2",
            message:
                "heredoc 'EOF' opened here is never closed (expected a line reading 'EOF'; the closing line may not be indented (only <<- strips leading tabs))"
        ),
        ErrorCase(
            text: "# escape=x\nFROM scratch\n", location: "Dockerfile:1:1",
            message: "the escape directive takes '\\' or '`', not 'x'"),
        ErrorCase(
            text: "FROM scratch\nCOPY --chmod=9z a /b\n", location: "Dockerfile:2:6",
            message: "--chmod takes an octal mode such as 0755, not '9z'"),
        ErrorCase(
            text: "FROM scratch\nONBUILD FROM x\n", location: "Dockerfile:2:9",
            message: "FROM is not allowed as an ONBUILD trigger"),
        ErrorCase(text: "FROM scratch\nWORKDIR\n", location: "Dockerfile:2:8", message: "WORKDIR needs arguments"),
        ErrorCase(
            text: "FROM scratch\nENV A=1 \\\n  B\n", location: "Dockerfile:3:3",
            message: "ENV takes KEY=VALUE pairs; 'B' has no '='"),
    ]

    @Test("reports malformed input at its line and column", arguments: errors)
    func malformed(_ example: ErrorCase) {
        #expect {
            _ = try Dockerfile(parsing: example.text)
        } throws: { error in
            guard let error = error as? DockerfileError else { return false }
            #expect(error.location.description == example.location)
            #expect(error.message == example.message)
            return true
        }
    }

    @Test("the last RUN of a stage is where an executor must stop")
    func lastRun() throws {
        let file = try Dockerfile(parsing: "FROM a\nRUN one\nCOPY x /x\nRUN two\nCOPY y /y\nCMD [\"y\"]\n")
        #expect(file.stages[0].lastRun?.location.line == 4)
    }
}
