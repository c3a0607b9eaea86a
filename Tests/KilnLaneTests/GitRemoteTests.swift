import Testing

@testable import KilnLane

@Suite("GitRemote: origin's URL as the runner's variables write it")
struct GitRemoteTests {
    @Test(
        "the usual spellings of a remote give the same address",
        arguments: [
            ("git@github.com:Acme/processors.git", "https://github.com/Acme/processors"),
            ("ssh://git@github.com/Acme/processors.git", "https://github.com/Acme/processors"),
            ("ssh://git@GitHub.com:22/Acme/processors", "https://github.com/Acme/processors"),
            ("https://github.com/Acme/processors", "https://github.com/Acme/processors"),
            ("https://x-access-token:secret@github.com/Acme/processors.git/", "https://github.com/Acme/processors"),
            ("http://git.internal:8080/team/repo.git", "http://git.internal:8080/team/repo"),
        ])
    func normalise(remote: String, expected: String) {
        #expect(GitRemote.normalise(remote) == expected)
    }

    @Test(
        "a local path or file URL is no web address", arguments: ["/srv/git/repo.git", "file:///srv/repo", "../repo"])
    func local(remote: String) {
        #expect(GitRemote.normalise(remote) == nil)
    }

    @Test("origin's url is read from the config, other remotes ignored")
    func config() {
        let text = """
            [core]
            \tbare = false
            [remote "upstream"]
            \turl = git@github.com:other/repo.git
            [remote "origin"]
            \turl = git@github.com:Acme/processors.git
            \tfetch = +refs/heads/*:refs/remotes/origin/*
            """
        #expect(GitRemote.originURL(inConfig: text) == "git@github.com:Acme/processors.git")
    }
}
