# mcp-gateway — GNU make + pkg-config, C17.
# `make` builds build/mcp-gateway; `make run` and `make test` install what is missing first.

CC       ?= cc
PKGS     := libuv libcurl jansson yaml-0.1 openssl hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

BUILD    ?= build
OPT      ?= -O2 -g
SAN      ?=
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS   := -std=c17 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) -Isrc -I$(LLHTTP_INC) $(PKG_CFLAGS) -pthread
LDFLAGS  := $(SAN) -pthread
LDLIBS   := $(PKG_LIBS) -lm

SRC      := $(filter-out src/main.c,$(wildcard src/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
LLHTTP_OBJ := $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o $(BUILD)/obj/llhttp/llhttp.o
LIB      := $(BUILD)/libgw.a
GATEWAY  := $(BUILD)/mcp-gateway
EXAMPLE  := $(BUILD)/mcp-example-server
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test-deps run test test-unit test-e2e test-asan test-asan-full test-valgrind clean check-config help
all: $(GATEWAY) $(EXAMPLE)

# V=1 shows the whole commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# llhttp's own sources, compiled with relaxed flags (not our code).
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=c17 $(OPT) $(SAN) -w -I$(LLHTTP_INC) -c $< -o $@

$(LIB): $(OBJ) $(LLHTTP_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(GATEWAY): src/main.c $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(EXAMPLE): examples/servers/mcp-example-server.c $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

# unit + e2e with the normal build, then under ASan/UBSan the unit tests, the fuzz inputs replayed
# and the smoke; one total
test: test-deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@$(MAKE) --no-print-directory $(ASAN_MAKE) all $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%) replay-bins
	@scripts/test.sh unit e2e asan

test-unit: $(UNIT_BIN)
	@scripts/test.sh unit

test-e2e: all
	@scripts/test.sh e2e

# ASan/UBSan build in its own directory: unit tests + an end-to-end smoke.
ASAN_MAKE := BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

# ASan/UBSan with leak detection: unit + smoke; test-asan-full: unit + every e2e suite (slower:
# node:test's per-test limit is raised)
test-asan: test-deps
	@$(MAKE) --no-print-directory $(ASAN_MAKE) all $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 scripts/test.sh unit smoke

# the unit tests under valgrind memcheck (the normal build): any error or leak fails the binary
test-valgrind: test-deps
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@UNIT_TIMEOUT=600 UNIT_WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect" \
	    scripts/test.sh unit

test-asan-full: test-deps
	@$(MAKE) --no-print-directory $(ASAN_MAKE) all $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 E2E_TEST_TIMEOUT_MS=300000 E2E_TIMEOUT=900 scripts/test.sh unit e2e

check-config: $(GATEWAY)
	$(GATEWAY) --mcp-gateway-config examples/gateway.yaml --check-config

clean:
	rm -rf build build-asan

# Installation (docs/operations.md). DESTDIR for staging (packages, tests); PREFIX for the tree.
# The configuration goes to $(SYSCONFDIR)/mcp-gateway and is never overwritten; the systemd unit
# gets the binary's and the configuration's paths of this installation.
#   make install                                   /usr/local/bin, /usr/local/share/man, /etc/mcp-gateway
#   make install DESTDIR=/tmp/stage PREFIX=/usr    a staged tree as a package would have it
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/mcp-gateway
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
.PHONY: install uninstall man

install: $(GATEWAY)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/mcp-gateway
	$(INSTALL) -m 0755 $(GATEWAY) $(DESTDIR)$(BINDIR)/mcp-gateway
	$(INSTALL) -m 0644 docs/mcp-gateway.8 $(DESTDIR)$(MANDIR)/man8/mcp-gateway.8
	$(INSTALL) -m 0644 examples/gateway.yaml $(DESTDIR)$(DOCDIR)/examples/gateway.yaml
	$(INSTALL) -m 0644 deploy/systemd/mcp-gateway.env $(DESTDIR)$(DOCDIR)/examples/mcp-gateway.env
	sed -e 's|/usr/local/bin/mcp-gateway|$(BINDIR)/mcp-gateway|g' \
	    -e 's|/etc/mcp-gateway/|$(SYSCONFDIR)/mcp-gateway/|g' \
	    deploy/systemd/mcp-gateway.service >$(DESTDIR)$(UNITDIR)/mcp-gateway.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/mcp-gateway.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/mcp-gateway.service.tmp $(DESTDIR)$(UNITDIR)/mcp-gateway.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/gateway.yaml ]; then \
	    echo "  kept    $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/gateway.yaml"; \
	else $(INSTALL) -m 0644 examples/gateway.yaml $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/gateway.yaml; fi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/mcp-gateway.env ]; then \
	    echo "  kept    $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/mcp-gateway.env"; \
	else $(INSTALL) -m 0600 deploy/systemd/mcp-gateway.env $(DESTDIR)$(SYSCONFDIR)/mcp-gateway/mcp-gateway.env; fi

# Leaves $(SYSCONFDIR)/mcp-gateway (the configuration and its secrets) in place.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mcp-gateway $(DESTDIR)$(MANDIR)/man8/mcp-gateway.8 \
	    $(DESTDIR)$(UNITDIR)/mcp-gateway.service
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "  kept    $(DESTDIR)$(SYSCONFDIR)/mcp-gateway (remove it by hand to drop the configuration)"

# The option entries of docs/mcp-gateway.8 from --help (tests/e2e/95-install fails when they drift).
man: $(GATEWAY)
	scripts/man-options.sh $(GATEWAY) --update

# Benchmark (bench/, docs/performance.md): never part of `make test`.
# `make bench` ≤ 10 min on 2 cores, `make bench-quick` ≤ 60 s; both write bench/results/latest.json.
BENCH_BIN := $(BUILD)/bench/loadgen $(BUILD)/bench/stdio-echo $(BUILD)/bench/jwtkit
.PHONY: bench bench-quick bench-deps bench-build

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

bench-deps:
	@bench/deps.sh

bench-build: all $(BENCH_BIN)

bench: bench-deps
	@$(MAKE) --no-print-directory bench-build
	@bench/run.sh full

bench-quick: bench-deps
	@$(MAKE) --no-print-directory bench-build
	@bench/run.sh quick

# Fuzzing (fuzz/, docs/fuzzing.md): libFuzzer targets built with clang, ASan and UBSan, in
# build-fuzz/ (the project's sources except main.c, and llhttp, instrumented for coverage).
# Never part of `make test`.
#   make fuzz                       each target for FUZZ_SECONDS (default 60), one after the other
#   make fuzz FUZZ_RUNS=10000000    each target for that many executions instead
#   make fuzz FUZZ_TARGETS="sse jwt" FUZZ_JOBS=2   a subset, two at a time
#   make fuzz-corpus                every seed and regression input once (a quick regression check)
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_ALL     := http jsonrpc sse jwt config session_id
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_JOBS    ?= 1
FUZZ_BINS    = $(FUZZ_ALL:%=$(BUILD)/fuzz/fuzz_%)
.PHONY: fuzz fuzz-build fuzz-deps fuzz-corpus fuzz-bins fuzz-clean replay-bins

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h $(wildcard fuzz/*_fixture.h) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -Ifuzz -fsanitize=fuzzer $< $(LIB) $(LDFLAGS) -fsanitize=fuzzer $(LDLIBS) -o $@

fuzz-bins: $(FUZZ_BINS)

# The same targets with fuzz/replay.c instead of libFuzzer: every corpus and regression input once,
# built by gcc in the ASan build for `make test` (scripts/test.sh asan).
REPLAY_BINS = $(FUZZ_ALL:%=$(BUILD)/fuzz/replay_%)
$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz_util.h $(wildcard fuzz/*_fixture.h) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -Ifuzz $< fuzz/replay.c $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

replay-bins: $(REPLAY_BINS)

fuzz-deps:
	@fuzz/deps.sh

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    WARN="-Wall -Wextra -Wshadow -Wno-unused-parameter" fuzz-bins

fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_JOBS=$(FUZZ_JOBS) \
	    fuzz/run.sh fuzz $(FUZZ_TARGETS)

fuzz-corpus: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) fuzz/run.sh corpus $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
