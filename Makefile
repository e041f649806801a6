# vmlab - a thin convenience over the same sources the rockspec builds.
#   make         build build/vmlab/core.so (use from the checkout, see README)
#   make demo    install what is missing, build, run the tour of experiments
#   make test    install what is missing, run the specs plain and under
#                ASan+UBSan, run luacheck; ends with "N passed, M failed"
#   make asan    the specs under AddressSanitizer + UBSan only
#   make bench   the benchmarks, each printing a ratio against its baseline
#   make lint    luacheck only
#   make matrix  the plain specs under every configuration this machine can be
#                put in (root/unprivileged, THP, overcommit, perf_event_paranoid),
#                every setting restored afterwards (.ci/matrix; as root)

LUA      ?= lua5.4
LUA_INC  ?= $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
CC       ?= cc
OPT      ?= -O2 -g
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_ALL = -std=gnu11 $(OPT) $(WARN) -fPIC $(LUA_INC) -D_GNU_SOURCE
LDLIBS    = -lrt -pthread -ldl
ASAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

SRC      := $(sort $(wildcard csrc/*.c))
HDR      := csrc/vmlab.h
BUILD    ?= build
MODULE   := $(BUILD)/vmlab/core.so
MODULE_ASAN := $(BUILD)-asan/vmlab/core.so

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;
export BUILD

.PHONY: all deps demo test check asan bench lint clean matrix
all: $(MODULE)

$(MODULE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CFLAGS) -shared -o $@ $(SRC) $(LDFLAGS) $(LDLIBS)

$(MODULE_ASAN): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O1 $(ASAN) $(CFLAGS) -shared -o $@ $(SRC) $(LDFLAGS) $(LDLIBS)

deps:
	@sh .ci/deps

demo: deps $(MODULE)
	$(LUA) bin/vmlab tour

# Plain run, sanitizer run and lint; one summary line; non-zero on any failure
# or when no test ran.
test: deps $(MODULE) $(MODULE_ASAN)
	@sh .ci/test all

check: $(MODULE)
	@sh .ci/test plain

# The plain specs once per machine configuration (.ci/matrix --help);
# MATRIX_ARGS="--dry-run" prints what it would set and run.
matrix: deps $(MODULE)
	@sh .ci/matrix $(MATRIX_ARGS)

asan: deps $(MODULE_ASAN)
	@sh .ci/test asan

lint: deps
	@sh .ci/test lint

bench: deps $(MODULE)
	@sh bench/run

clean:
	rm -rf $(BUILD) $(BUILD)-asan
