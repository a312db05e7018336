# Builds the core library, its unit tests, the nginx dynamic module, and
# runs the suite.  `make run` and `make test` work on a fresh Debian 12.

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
BUILD       := build
CC          ?= cc
CFLAGS      ?= -g -O2 -Wall -Wextra -Wno-unused-parameter -fPIC
CPPFLAGS    += -Isrc -I$(BUILD)/gen
LIBS        := -lavro -ljansson -lsqlite3 -lz -ldeflate -lsnappy -lzstd -lcrypto \
	           -lcurl -lpthread

DEB_PACKAGES := nginx nginx-dev libavro-dev libjansson-dev zlib1g-dev \
	            libsqlite3-dev libcurl4-openssl-dev libsnappy-dev \
	            libzstd-dev libdeflate-dev libssl-dev python3-avro avro-bin \
	            sqlite3 curl openssl \
	            perl wrk bc python3-snappy python3-zstandard \
	            libasan8 libubsan1

CORE_SRC    := $(wildcard src/*.c)
CORE_OBJ    := $(patsubst src/%.c,$(BUILD)/core/%.o,$(CORE_SRC)) \
	           $(BUILD)/core/avs_migrations.o
UNIT_SRC    := $(wildcard t/unit/*.c)
UNIT_BIN    := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
MODULE      := $(BUILD)/nginx/ngx_http_avro_module.so

# The unit tests built once more with AddressSanitizer (leaks included) and
# UBSan, so that every hostile input of theirs is also checked for leaks
# and for memory touched out of bounds.
SAN_BUILD   := $(BUILD)/san
SAN_FLAGS   := -g -O1 -fsanitize=address,undefined \
	           -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_CFLAGS  := $(SAN_FLAGS) -Wall -Wextra -Wno-unused-parameter
SAN_BIN     := $(patsubst t/unit/%.c,$(SAN_BUILD)/unit/%,$(UNIT_SRC))
SAN_MODULE  := $(SAN_BUILD)/nginx/ngx_http_avro_module.so
, := ,

.PHONY: all deps core unit unit-san module module-san test run fuzz bench clean FORCE

all: module unit

# Installs the Debian packages only when one is missing, so that repeated
# runs on a prepared machine stay fast and offline.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y --no-install-recommends $$missing; \
	fi
	@command -v npm > /dev/null || { apt-get update && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }
	@[ -d node_modules/avsc ] && [ -d node_modules/s3rver ] \
	    || npm ci --no-audit --no-fund

$(BUILD)/gen/avs_migrations.c: $(wildcard sql/*.sql) tools/embed-sql.sh
	@mkdir -p $(dir $@)
	sh tools/embed-sql.sh sql > $@

$(BUILD)/core/avs_migrations.o: $(BUILD)/gen/avs_migrations.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/core/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libavs.a: $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

core: $(BUILD)/libavs.a

$(BUILD)/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(BUILD)/libavs.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libavs.a $(LIBS)

unit: $(UNIT_BIN)

unit-san:
	$(MAKE) BUILD=$(SAN_BUILD) CFLAGS="$(SAN_CFLAGS)" unit

# nginx's Makefile lists the module's sources, so configure runs again
# whenever a source file appears or goes, or a migration changes.
$(BUILD)/nginx/sources.list: FORCE
	@mkdir -p $(dir $@)
	@ls ngx_module/*.[ch] src/*.[ch] sql/*.sql > $@.new
	@cmp -s $@.new $@ || mv $@.new $@
	@rm -f $@.new

# $(call configure-nginx,builddir,cc-opt,ld-opt): the installed nginx's
# own configure flags, with this module added and built in builddir.
configure-nginx = mkdir -p $(1) && cd $(NGINX_SRC) && . ./conf_flags \
	&& ASAN_OPTIONS=detect_leaks=0 ./configure \
	    --with-cc-opt="$(2)" --with-ld-opt="$(3)" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(CURDIR)/$(1) \
	    > $(CURDIR)/$(1)/configure.log \
	    || { cat $(CURDIR)/$(1)/configure.log; exit 1; }

NGINX_CONF_DEPS := config tools/embed-sql.sh $(wildcard sql/*.sql) \
	           $(BUILD)/nginx/sources.list $(NGINX_SRC)/configure
MODULE_DEPS     := $(CORE_SRC) $(wildcard src/*.h) \
	           $(wildcard ngx_module/*.[ch]) $(wildcard sql/*.sql)

$(BUILD)/nginx/Makefile: $(NGINX_CONF_DEPS)
	$(call configure-nginx,$(BUILD)/nginx,-g -O2 -fPIC -Wall,-fPIC)

$(MODULE): $(BUILD)/nginx/Makefile $(MODULE_DEPS)
	$(MAKE) -f $(CURDIR)/$(BUILD)/nginx/Makefile -C $(NGINX_SRC) modules

module: $(MODULE)

# The module with the sanitizers, for t/16-sanitized.t; nginx itself is
# Debian's, with libasan preloaded.
$(SAN_BUILD)/nginx/Makefile: $(NGINX_CONF_DEPS)
	$(call configure-nginx,$(SAN_BUILD)/nginx,-fPIC -Wall $(SAN_FLAGS),\
	    -fPIC -fsanitize=address$(,)undefined)

$(SAN_MODULE): $(SAN_BUILD)/nginx/Makefile $(MODULE_DEPS)
	$(MAKE) -f $(CURDIR)/$(SAN_BUILD)/nginx/Makefile -C $(NGINX_SRC) modules

module-san: $(SAN_MODULE)

# A failing file is run again, alone and verbose, and its failed checks
# with their diagnostics come last, so that the end of the output (all a
# CI log may keep) says which check failed and why.
test: deps
	$(MAKE) all unit-san module-san
	prove -j2 --state=save $(UNIT_BIN) $(SAN_BIN) $(sort $(wildcard t/*.t)) \
	    || { echo "--- the failed files again, verbose:"; \
	         prove -v --merge --state=failed 2>&1 | tee $(BUILD)/retest.log; \
	         echo "--- the failed checks (first run above, second here):"; \
	         grep -A6 '^ *not ok' $(BUILD)/retest.log | cut -c1-240 \
	             | tail -60; \
	         exit 1; }

# A local trial: as root the workers run as root too, so that a checkout
# under /root works; production configurations name their own user.
run: deps
	$(MAKE) module
	mkdir -p var/logs var/tmp
	nginx -p $(CURDIR)/ -c conf/nginx.conf -e var/logs/error.log \
	    -g "daemon off; $$( [ $$(id -u) = 0 ] && echo 'user root;' )"

# libFuzzer over the parser, codecs and walker (t/fuzz/fuzz_upload.c),
# with AddressSanitizer (leaks included) and UBSan.
FUZZ_SECONDS ?= 600
FUZZ_BIN     := $(BUILD)/fuzz/fuzz_upload

$(FUZZ_BIN): t/fuzz/fuzz_upload.c $(CORE_SRC) $(wildcard src/*.h) \
		$(BUILD)/gen/avs_migrations.c
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(CPPFLAGS) -o $@ \
	    t/fuzz/fuzz_upload.c $(CORE_SRC) $(BUILD)/gen/avs_migrations.c $(LIBS)

fuzz: deps
	@missing=$$(for p in clang libclang-rt-14-dev; do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	[ -z "$$missing" ] || { apt-get update && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; }
	$(MAKE) $(FUZZ_BIN)
	[ -d $(BUILD)/fuzz/corpus ] || sh t/fuzz/make-corpus.sh $(BUILD)/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus

# Benchmarks: ratios against a baseline measured in the same run.
bench: deps
	$(MAKE) module
	bash bench/upload.sh
	bash bench/archive.sh
	bash bench/read.sh

clean:
	rm -rf $(BUILD) t/tmp .prove
