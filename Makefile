# vzdump-qemu: build, test, install, demo. `make test` and `make demo` install what they
# need first (scripts/install-deps.sh; needs root on a fresh Debian 12 machine).

CARGO ?= cargo
PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
RELEASE_LIB := target/release/libvzdump_qemu.so
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build test test-rust lint header-check symbols-check install clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The committed header must be what cbindgen makes of the sources.
header-check:
	$(CARGO) build --release -p vzdump-qemu
	git diff --exit-code -- include/vzdump_qemu.h || \
	  { echo "include/vzdump_qemu.h is out of date: commit the regenerated header" >&2; exit 1; }

symbols-check: header-check
	./scripts/check-symbols.sh $(RELEASE_LIB) include/vzdump_qemu.h

test-rust:
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace

install:
	$(CARGO) build --release -p vzdump-qemu
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(RELEASE_LIB) $(DESTDIR)$(PREFIX)/lib/libvzdump_qemu.so.0
	ln -sf libvzdump_qemu.so.0 $(DESTDIR)$(PREFIX)/lib/libvzdump_qemu.so
	install -m 0644 include/vzdump_qemu.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' vzdump-qemu.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/vzdump-qemu.pc

# Everything CI runs.
test: deps lint symbols-check test-rust

clean:
	$(CARGO) clean
