# Build, run, test and demonstrate the chat. `make help` lists the targets.
CARGO ?= cargo
ARGS ?=
BIN := target/debug

.PHONY: help build release test fuzz run-server run-client run-cluster bench clean demo \
        demo-basic demo-multiplex demo-concurrency demo-private demo-encryption demo-offline demo-reliability demo-hardening demo-group demo-file \
        demo-web demo-cluster demo-performance

help:
	@echo "make run-server [ARGS=...]   start a server on 0.0.0.0:50445 (TLS) with an admin console"
	@echo "make run-client [ARGS=...]   start a client for 127.0.0.1:50445"
	@echo "make run-cluster [NODES=3]   PostgreSQL, NODES nodes and HAProxy on 127.0.0.1 (docs/cluster.md); Ctrl-C stops all"
	@echo "make test                    fmt check, clippy -D warnings, all tests"
	@echo "make fuzz                    libFuzzer targets (FUZZ_SECONDS=300 each) + property tests (PROP_SECONDS=60 each); docs/security.md"
	@echo "make bench                   chat-bench scenarios against a release server; writes docs/performance.md"
	@echo "make demo                    every demo below (each exits non-zero on failure)"
	@echo "make demo-basic | demo-multiplex | demo-concurrency | demo-private | demo-encryption"
	@echo "make demo-offline | demo-reliability | demo-hardening | demo-group | demo-file"
	@echo "make demo-web                two browsers (headless Chromium) and a terminal; screenshots in demos/out/web/"
	@echo "make demo-cluster            three nodes on PostgreSQL, one SIGKILLed mid-conversation; transcript in demos/out/cluster/"
	@echo "make demo-performance        (release build) fan-out without loss, 2,000 connects, coalesced presence, idle CPU"
	@echo "make build | release | clean"

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

fuzz:
	bash fuzz/run.sh

# Not -q: the first build takes minutes, and cargo shows its progress.
run-server:
	$(CARGO) run --release -p chat-server -- $(ARGS)

run-client:
	$(CARGO) run --release -p chat-client -- $(ARGS)

NODES ?= 3

# In the foreground until Ctrl-C, which stops every process it started.
run-cluster: release
	BIN=target/release bash scripts/cluster.sh run $(NODES)

bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean

DEMOS := basic multiplex concurrency private encryption offline reliability hardening group file web cluster

# Every demo runs, even after one fails; the failures are listed at the end.
demo: build release
	@failed=""; \
	for d in $(DEMOS); do bash demos/$$d.sh $(BIN) || failed="$$failed demo-$$d"; done; \
	bash demos/performance.sh target/release || failed="$$failed demo-performance"; \
	if [ -n "$$failed" ]; then echo; echo "FAILED:$$failed"; exit 1; fi; \
	echo; echo "every demo passed"

demo-basic demo-multiplex demo-concurrency demo-private demo-encryption demo-offline demo-reliability demo-hardening demo-group demo-file demo-web demo-cluster: build
	bash demos/$(@:demo-%=%).sh $(BIN)

# Performance is a property of the release build.
demo-performance: release
	bash demos/performance.sh target/release
