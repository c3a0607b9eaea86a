# kiln — the two commands a newcomer needs are `make demo` and `make test`; both install what is
# missing first (Debian packages, as root) and then build.

SWIFT ?= swift
# The repository's cache/ folder is the store the demo and the tests use (see cache/README.md).
export KILN_CACHE_DIR := $(CURDIR)/cache
KILN := $(CURDIR)/.build/debug/kiln
export KILN_BIN := $(KILN)

.PHONY: all deps build release man test demo bench clean fmt lint

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# The tests include the release archive's, on a bare Debian root: make release first.
test: build release
	$(SWIFT) test

# dist/kiln-VERSION-linux-ARCH.tar.gz (+ .sha256): Swift's runtime linked in, so a machine needs
# only `apt-get install -y libarchive13 zlib1g libssl3 ca-certificates` (see README.md).
release: deps
	@SWIFT=$(SWIFT) scripts/release.sh

# dist/man/kiln.1, from the commands' own help (swift-argument-parser's generate-manual plugin).
man: deps
	$(SWIFT) package generate-manual --configuration debug
	mkdir -p dist/man && cp .build/plugins/GenerateManual/outputs/kiln/kiln.1 dist/man/kiln.1

demo: build
	@scripts/demo.sh

# Builds kiln in release mode and runs the benchmark package against it (see docs/benchmarks.md).
bench: deps
	$(SWIFT) build -c release --product kiln
	cd Benchmarks && $(SWIFT) run -c release kiln-bench --kiln $(CURDIR)/.build/release/kiln

# The code's layout is swift-format's, with the repository's .swift-format; CI runs lint.
FORMATTED := Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Sources

fmt:
	$(SWIFT) format format --in-place --recursive $(FORMATTED)

lint:
	$(SWIFT) format lint --strict --recursive $(FORMATTED)

clean:
	rm -rf .build demo-out dist
	find cache -mindepth 1 ! -name README.md -exec rm -rf {} +
