# sesh: every target works from a fresh clone. Modules are listed in
# modules.txt; each is tested on its own, since `go test ./...` at the root
# does not reach nested modules.

MODULES   := $(shell cat modules.txt)
GOTEST    ?= go test
TESTFLAGS ?=
FUZZTIME  ?= 60s
STATICCHECK := go tool -modfile=$(CURDIR)/tools/go.mod staticcheck

.PHONY: test test-modules lint fuzz fuzz-long bench soak demo deps-check

## test: every test of every module, with the race detector, against real
## servers that scripts/testservers.sh finds, starts or installs
test: deps-check
	@bash scripts/testservers.sh run -- $(MAKE) --no-print-directory test-modules

## test-modules: the tests alone, with whatever SESH_TEST_* servers are set;
## then the core's allocation tests, which only count without -race
test-modules:
	@set -e; for m in $(MODULES); do \
		echo "== $$m"; \
		(cd $$m && $(GOTEST) -race -count=1 $(TESTFLAGS) ./...); \
	done
	@echo "== allocations (no -race)"; $(GOTEST) -count=1 $(TESTFLAGS) -run 'Allocs' . ./seal

## deps-check: the core module requires nothing
deps-check:
	@test "$$(go list -m all | wc -l)" -eq 1 || { echo "core module has dependencies:"; go list -m all; exit 1; }

## lint: gofmt, go vet and staticcheck on every module
lint:
	@set -e; out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "== lint $$m"; \
		(cd $$m && go vet ./... && $(STATICCHECK) ./...); \
	done

## fuzz: each fuzz target for FUZZTIME (default 60s)
fuzz:
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(MODULES)

## fuzz-long: each fuzz target for 5 minutes
fuzz-long:
	@FUZZTIME=5m bash scripts/fuzz.sh $(MODULES)

## bench: Go benchmarks of every module
bench:
	@set -e; for m in $(MODULES); do \
		(cd $$m && go test -run='^$$' -bench=. -benchmem ./...); \
	done

## soak: the demo's soak test, SOAK per store (default 3m); report in soak-report.txt
soak:
	@bash scripts/testservers.sh run -- env SESH_SOAK=$(or $(SOAK),3m) SESH_SOAK_REPORT=$(CURDIR)/soak-report.txt \
		go -C cmd test -race -count=1 -timeout=0 -run '^TestSoak$$' -v ./seshdemo

## demo: run the demo on the embedded file store
demo:
	go -C cmd run ./seshdemo
