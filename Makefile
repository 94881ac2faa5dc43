# Anchormail - one top-level, non-recursive Makefile.
#
#   make            build the programs (build/release)
#   make run        install what is missing, build, start the local stack
#   make check      install what is missing, check the formatting, build with -Werror and
#                   ASan/UBSan (build/check), run unit, fuzz and integration tests
#   make lint       cppcheck and clang-tidy
#   make lint-structure  include circles and file/function sizes (tests/lint/)
#   make bench      the benchmarks under bench/
#   make format     clang-format every C file in place
#   make format-check  fail when a C file is not as clang-format would write it
#
# Layout: lib/ is the shared library (libanchor.a); each program has its own
# directory whose main.c holds main() and whose other files are archived so
# that unit tests can link them.

CC       ?= cc
PKGS     := libmicrohttpd gnutls jansson libpq libssl libcrypto ldns libcurl libevent libevent_openssl libevent_pthreads libidn2
PREFIX   ?= /usr/local

# BUILD selects an output tree; `make check` sets BUILD=build/check SAN=1.
BUILD    ?= build/release
SAN      ?= 0

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
            -Wpointer-arith -Wvla -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g -pthread $(WARN) -Ilib \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lunistring -lcrypt -lm -pthread

ifeq ($(SAN),1)
CFLAGS_MODE := -O1 -Werror -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
LDFLAGS_MODE := -fsanitize=address,undefined
else
CFLAGS_MODE := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDFLAGS_MODE :=
endif

ALL_CFLAGS  := $(CFLAGS_BASE) $(CFLAGS_MODE) $(CFLAGS)
ALL_LDFLAGS := $(LDFLAGS_MODE) $(LDFLAGS)

PROGRAMS := keyserver:anchor-keyserver anchorctl:anchorctl dnstools:anchor-dns reputation:anchor-reputation policyd:anchor-policyd relay:anchor-relay

LIB_SRC  := $(wildcard lib/*/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIBA     := $(BUILD)/libanchor.a

prog_dir  = $(word 1,$(subst :, ,$1))
prog_name = $(word 2,$(subst :, ,$1))
BINS     := $(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$p)/main.c),$(BUILD)/$(call prog_name,$p)))
PROG_DIRS := $(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$p)/main.c),$(call prog_dir,$p)))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run stop check check-build unit fuzz fuzz-build fuzz-bins integration lint lint-structure bench \
        bench-build format format-check install clean

all: $(BINS)

# V=1 shows the full compiler lines.
Q := $(if $(filter 1,$(V)),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

# keyserver/page.c builds the lookup page's files into the binary (.incbin).
$(BUILD)/obj/keyserver/page.o: $(wildcard keyserver/www/*)

# One rule per program: <dir>/main.c plus an archive of the directory's other files.
define PROGRAM_RULES
$(call prog_dir,$1)_SRC := $$(filter-out $(call prog_dir,$1)/main.c,$$(wildcard $(call prog_dir,$1)/*.c))
$(call prog_dir,$1)_OBJ := $$($(call prog_dir,$1)_SRC:%.c=$(BUILD)/obj/%.o)
$(BUILD)/obj/$(call prog_dir,$1).a: $$($(call prog_dir,$1)_OBJ)
	@rm -f $$@
	$(Q)ar rcs $$@ $$^
$(BUILD)/$(call prog_name,$1): $(BUILD)/obj/$(call prog_dir,$1)/main.o $(BUILD)/obj/$(call prog_dir,$1).a $(LIBA)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $$@ $$^ $(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call PROGRAM_RULES,$p)))

PROG_ARCHIVES := $(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$p)/main.c),$(BUILD)/obj/$(call prog_dir,$p).a))

# Headers the unit tests and fuzz targets share (test data and helpers, no program code).
TEST_INC := -Itests/fixtures

# A unit test sees lib/ and at most one program: the one its name says (keep in step
# with UNIT_PROGRAM in tests/lint/check-includes, which refuses a test that reaches
# further).  It gets that folder's include path and archive, and libanchor.a.
unit_prog = $(strip \
	$(if $(filter test_relay_%,$1),relay, \
	$(if $(filter test_rep_% test_arf test_dnszone,$1),reputation, \
	$(if $(filter test_policyd,$1),policyd, \
	$(if $(filter test_anchorctl,$1),anchorctl, \
	$(if $(filter test_ks_%,$1),keyserver, \
	$(if $(filter test_dnstools_%,$1),dnstools)))))))

define UNIT_RULE
$(BUILD)/tests/$1: tests/unit/$1.c $(if $(call unit_prog,$1),$(BUILD)/obj/$(call unit_prog,$1).a) $(LIBA)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(ALL_CFLAGS) $(addprefix -I,$(call unit_prog,$1)) $(TEST_INC) $$(ALL_LDFLAGS) -o $$@ $$^ \
		$$(LDLIBS) $$(shell pkg-config --libs cmocka)
endef
$(foreach t,$(UNIT_SRC:tests/unit/%.c=%),$(eval $(call UNIT_RULE,$t)))

deps:
	@deploy/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@ANCHOR_BIN=$(abspath $(BUILD)) deploy/run-stack.sh start

stop:
	@deploy/run-stack.sh stop

# check: everything, under sanitizers and -Werror.
# The builds use every core (CI calls plain `make check`); the tests keep their own pace.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory lint-structure
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/check SAN=1 check-build
	@$(MAKE) --no-print-directory BUILD=build/check SAN=1 unit
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory BUILD=build/check SAN=1 integration

check-build: $(BINS) $(UNIT_BIN)

unit: $(UNIT_BIN)
	@tests/run-unit.sh $(UNIT_BIN)

integration: $(BINS)
	@ANCHOR_BIN=$(abspath $(BUILD)) tests/run-integration.sh

# Fuzzers are built with clang's libFuzzer into their own tree.
FUZZ_BUILD := build/fuzz
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
# Seconds per target in make check: 42 targets, two at a time, about two minutes
# (the budget of make check is 20 minutes on two cores).
FUZZ_TIME  ?= 6

# The sub-make's goal is one phony target, not the binaries themselves: make
# names every goal that is already up to date, one line per target.
fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN=0 \
		CFLAGS="-O1 -fsanitize=fuzzer-no-link,address,undefined -Wno-unused-command-line-argument" \
		fuzz-bins

fuzz-bins: $(FUZZ_BUILD)/libanchor.a $(FUZZ_BIN)
	@:

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libanchor.a
	clang $(CFLAGS_BASE) $(TEST_INC) -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# fuzz_ks_*: parsers that live in the key server itself.
$(FUZZ_BUILD)/fuzz_ks_%: tests/fuzz/fuzz_ks_%.c $(FUZZ_BUILD)/obj/keyserver.a $(FUZZ_BUILD)/libanchor.a
	clang $(CFLAGS_BASE) $(TEST_INC) -Ikeyserver -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# fuzz_relay_*: parsers that live in the relay.
$(FUZZ_BUILD)/fuzz_relay_%: tests/fuzz/fuzz_relay_%.c $(FUZZ_BUILD)/obj/relay.a $(FUZZ_BUILD)/libanchor.a
	clang $(CFLAGS_BASE) $(TEST_INC) -Irelay -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# fuzz_ctl_*: parsers that live in anchorctl.
$(FUZZ_BUILD)/fuzz_ctl_%: tests/fuzz/fuzz_ctl_%.c $(FUZZ_BUILD)/obj/anchorctl.a $(FUZZ_BUILD)/libanchor.a
	clang $(CFLAGS_BASE) $(TEST_INC) -Ianchorctl -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz: fuzz-build
	@tests/run-fuzz.sh $(FUZZ_TIME) $(FUZZ_BIN)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem --include=tests/lint/cppcheck-macros.h \
		-Ilib lib $(PROG_DIRS)
	clang-tidy --quiet $(wildcard lib/*/*.c $(addsuffix /*.c,$(PROG_DIRS))) -- \
		$(CFLAGS_BASE)

# The structure rules (issue 13): no dependency circle between files or folders, no
# include across programs (check-includes); no file over 800 lines, no function over 80
# (check-sizes).  Part of `make check`.
lint-structure:
	@rc=0; tests/lint/check-includes || rc=1; tests/lint/check-sizes || rc=1; exit $$rc

# Benchmark programs: bench/<name>.c -> $(BUILD)/bench/<name>, linked with libanchor.a.
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

bench-build: $(BENCH_BIN)

# The integration tests run bench/smtp_load and bench/smtp_sink once (test_bench_smtp_load.py).
check-build: $(BENCH_BIN)

$(BUILD)/bench/%: bench/%.c $(LIBA)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

bench: all bench-build
	@bench/run-all.sh $(abspath $(BUILD))

# The files `make format` rewrites and `make format-check` checks (the same set).
FORMAT_SRC = $(wildcard lib/*/*.[ch] $(addsuffix /*.[ch],$(PROG_DIRS)) tests/unit/*.c \
	tests/fuzz/*.c tests/fixtures/*.h)

format:
	clang-format -i $(FORMAT_SRC)

# Fails, naming each file and line, when a file differs from .clang-format.
format-check:
	clang-format --dry-run -Werror $(FORMAT_SRC)

# install: programs, migrations, man pages, every sample configuration (to copy to
# /etc/anchor/<name>.conf; never installed over a real one) and every systemd unit
# ($(PREFIX)/lib/systemd/system is on systemd's search path for /usr/local).
UNITDIR ?= $(PREFIX)/lib/systemd/system

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/anchor/sql \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(UNITDIR)
	install -m 0755 $(filter-out %/anchorctl %/anchor-dns,$(BINS)) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(filter %/anchorctl %/anchor-dns,$(BINS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/anchor/sql/
	install -m 0644 deploy/*.conf.sample $(DESTDIR)$(PREFIX)/share/anchor/
	install -m 0644 deploy/systemd/*.service $(DESTDIR)$(UNITDIR)/
	install -m 0644 docs/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
