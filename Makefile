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
#   make fuzz    SEEDS=N batches of FUZZ_CALLS fuzzed calls (fuzz/run.lua) under
#                ASan+UBSan and under UBSan+float-cast-overflow, then the
#                resource spec at full count; non-zero on any crash

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
# the third sanitizer flavour, for make fuzz: UBSan plus float-to-int overflow
FCO       = -fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
MODULE_FCO := $(BUILD)-fco/vmlab/core.so
SEEDS      ?= 200
FUZZ_CALLS ?= 2500
FUZZ_JOBS  ?= 2

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

$(MODULE_FCO): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O1 $(FCO) $(CFLAGS) -shared -o $@ $(SRC) $(LDFLAGS) $(LDLIBS)

deps:
	@sh .ci/deps

demo: deps $(MODULE)
	$(LUA) bin/vmlab tour --report $(BUILD)/report.html

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

# A fuzz campaign (README, "Fuzzing"): SEEDS batches under each sanitizer
# build, each batch a fresh process; then spec/resources_spec.lua (when it
# exists) at 10,000 rounds with the plain build. Failing batches are kept
# in $(BUILD)-asan/fuzz-failures and $(BUILD)-fco/fuzz-failures.
.PHONY: fuzz
fuzz: $(MODULE) $(MODULE_ASAN) $(MODULE_FCO)
	@status=0; \
	$(LUA) fuzz/run.lua --build $(BUILD)-asan --sanitize asan --seeds $(SEEDS) --calls $(FUZZ_CALLS) --jobs $(FUZZ_JOBS) --quiet || status=1; \
	$(LUA) fuzz/run.lua --build $(BUILD)-fco --sanitize fco --seeds $(SEEDS) --calls $(FUZZ_CALLS) --jobs $(FUZZ_JOBS) --quiet || status=1; \
	if [ -f spec/resources_spec.lua ]; then \
	  echo "== spec/resources_spec.lua, VMLAB_RESOURCE_ROUNDS=10000"; \
	  VMLAB_RESOURCE_ROUNDS=10000 VMLAB_BUILD=$(CURDIR)/$(BUILD) $(LUA) /usr/bin/busted --lua=$(LUA) \
	    --cpath="$(CURDIR)/$(BUILD)/?.so" spec/resources_spec.lua || status=1; \
	fi; \
	exit $$status

clean:
	rm -rf $(BUILD) $(BUILD)-asan
