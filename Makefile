# vzdump-qemu: build, test, install, demo.
#
#   make demo      the main job: a verified vzdump-style backup through Perl, Rust, the
#                  simulator and a compressor (options: DISK= COMPRESS= STYLE= BWLIMIT=)
#   make demo-c    the same through the C API alone
#   make test      every test; what CI runs (.ci/run)
#   make test-fuzz the bounded fuzz run of make test (FUZZ_SECONDS= per target, default 15)
#   make test-perl-valgrind  the Perl suite under valgrind, leaks by owner (about 6 min)
#   make bench     every benchmark as one table, also in target/bench/bench.json
#                  (docs/performance.md; QUICK=1: small sizes, about a minute)
#   make deb       the Debian packages (dpkg-buildpackage -us -uc -b) in build/deb/
#   make install   library, header and vzdump-qemu.pc into PREFIX (LIBDIR, INCLUDEDIR);
#                  install-tools: vzdump-qemu, pve-qmp-sim and their man pages (BINDIR,
#                  MANDIR); make dist: the Perl module's tarball in build/, which builds
#                  against an installed library found by pkg-config
#
# Both install what they need first (scripts/install-deps.sh; root on a fresh Debian 12).

CARGO ?= cargo
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
RELEASE_LIB := target/release/libvzdump_qemu.so
CFLAGS_STRICT := -std=c99 -Wall -Wextra -Werror -pedantic
# A hung test must fail the run, not stall CI.
TIMEOUT := timeout --kill-after=30
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build release perl demo demo-c test lint header-check symbols-check \
	test-rust test-c test-perl test-perl-valgrind test-demo test-packages test-fuzz bench \
	bench-quick man dist deb install install-tools clean

all: build

deps:
	./scripts/install-deps.sh

# Release library (with its soname link, which cargo does not make), simulator, CLI.
release:
	$(CARGO) build --workspace --release
	ln -sf libvzdump_qemu.so target/release/libvzdump_qemu.so.0

perl: release
	cd perl && VZDUMP_QEMU_PROFILE=release perl Makefile.PL >/dev/null && $(MAKE) -s >/dev/null

tests/c/build/demo: examples/demo.c include/vzdump_qemu.h release
	mkdir -p tests/c/build
	gcc $(CFLAGS_STRICT) -D_POSIX_C_SOURCE=200809L -Iinclude examples/demo.c \
	  -Ltarget/release -lvzdump_qemu -Wl,-rpath,$(CURDIR)/target/release -o $@

build: deps release perl tests/c/build/demo

# Man pages from the tools' clap declarations (mangen/).
man: release
	target/release/vzdump-qemu-mangen target/man

# The Perl module's CPAN-style tarball (the files in perl/MANIFEST): outside the tree it
# builds against the installed library found by `pkg-config vzdump-qemu`.
dist: perl
	mkdir -p build
	$(MAKE) -s -C perl dist >/dev/null
	mv perl/PVE-RS-VZDump-Qemu-$(VERSION).tar.gz build/

# The Debian packages (debian/), in build/deb/ instead of the parent directory.
DEB_DIR := build/deb
ARCH = $(shell dpkg --print-architecture)
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)
	VZDUMP_QEMU_DEB_DIR=$(DEB_DIR) dpkg-buildpackage -us -uc -b \
	  --buildinfo-option=-u$(DEB_DIR) --buildinfo-file=$(DEB_DIR)/vzdump-qemu_$(VERSION)_$(ARCH).buildinfo \
	  --changes-option=-u$(DEB_DIR) --changes-file=$(DEB_DIR)/vzdump-qemu_$(VERSION)_$(ARCH).changes

demo: build
	./scripts/demo.sh

demo-c: build
	DEMO_VARIANT=c ./scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --quiet

# The committed header must be what cbindgen makes of the sources.
header-check: release
	git diff --exit-code -- include/vzdump_qemu.h || \
	  { echo "include/vzdump_qemu.h is out of date: commit the regenerated header" >&2; exit 1; }

symbols-check: header-check
	./scripts/check-symbols.sh $(RELEASE_LIB) include/vzdump_qemu.h

test-rust:
	$(CARGO) build --workspace --all-targets
	$(TIMEOUT) 900 $(CARGO) test --workspace

test-c: release
	$(TIMEOUT) 600 ./tests/c/run.sh

test-perl: perl
	cd perl && $(TIMEOUT) 600 prove -b t/

# Not in make test (about 6 minutes): each Perl test under valgrind; no definitely lost byte
# may be the library's or the XS shim's (scripts/perl-valgrind.sh, docs/reliability.md).
test-perl-valgrind: perl
	$(CARGO) build --workspace --bins
	$(TIMEOUT) 1800 ./scripts/perl-valgrind.sh

test-demo: build
	$(TIMEOUT) 600 ./scripts/test-demo.sh

# The Debian packages built, lintian-checked, installed, used from the installed files
# alone (C via pkg-config, the Perl dist, backups with the installed module and tools),
# purged again (scripts/test-packages.sh).
test-packages: deps
	$(TIMEOUT) 1200 ./scripts/test-packages.sh

# Coverage-guided fuzzing, each target of fuzz/ for FUZZ_SECONDS (scripts/fuzz.sh; the first
# run installs cargo-fuzz and builds the targets, a few minutes).
FUZZ_SECONDS ?= 15
test-fuzz:
	$(TIMEOUT) 1200 ./scripts/fuzz.sh $(FUZZ_SECONDS)

# Every benchmark, one table (scripts/bench.sh; QUICK=1 for the small run).
QUICK ?=
bench: deps release perl
	QUICK=$(QUICK) ./scripts/bench.sh

# The quick run checks that every benchmark runs and the JSON has every row.
bench-quick: deps release perl
	QUICK=1 $(TIMEOUT) 600 ./scripts/bench.sh

# Everything CI runs.
test: deps lint symbols-check test-rust test-c test-perl test-demo test-packages test-fuzz \
	bench-quick

install: release
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 0644 $(RELEASE_LIB) $(DESTDIR)$(LIBDIR)/libvzdump_qemu.so.0
	ln -sf libvzdump_qemu.so.0 $(DESTDIR)$(LIBDIR)/libvzdump_qemu.so
	install -m 0644 include/vzdump_qemu.h $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	  vzdump-qemu.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/vzdump-qemu.pc

install-tools: man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 target/release/vzdump-qemu target/release/pve-qmp-sim $(DESTDIR)$(BINDIR)/
	install -m 0644 target/man/*.1 $(DESTDIR)$(MANDIR)/man1/

clean:
	$(CARGO) clean
	-cd perl && [ -f Makefile ] && $(MAKE) -s clean >/dev/null
	rm -rf tests/c/build build fuzz/target fuzz/artifacts
