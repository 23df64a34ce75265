# vzdump-qemu: build, test, demo. `make test` and `make demo` install what they need first
# (scripts/install-deps.sh; needs root on a fresh Debian 12 machine).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build test test-rust lint demo clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

# Everything CI runs.
test: deps lint test-rust

clean:
	$(CARGO) clean
