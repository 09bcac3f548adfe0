# `make check` is the one command that runs every test. On a fresh Debian
# machine with Go it first installs Nix and builds MinIO (cached).
GO ?= go
export NIXS3Q_REQUIRE_TOOLS := 1
export GOFLAGS := -mod=readonly

.PHONY: check deps fmt vet test e2e build bench try

check: deps fmt vet test e2e
	@echo "make check: all tests passed"

deps:
	@NIXS3Q_MINIO="$$(./scripts/deps.sh)"; echo "MinIO: $$NIXS3Q_MINIO"; \
	  test -x "$$NIXS3Q_MINIO"

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

test:
	$(GO) test -race -count=1 ./...

e2e:
	$(GO) test -tags e2e -count=1 -v -timeout 15m ./e2e/

build:
	$(GO) build -o bin/ ./cmd/...

# nixs3q against its baselines (nix copy, a no-op process, zstd alone) on
# the same inputs and MinIO; see BENCHMARKS.md. About 10 minutes on 2 cores.
# BENCHFLAGS: -size small|full, -runs N, -only NAME,..., -json.
BENCHFLAGS ?=
bench: deps
	$(GO) run ./bench $(BENCHFLAGS)

try:
	./scripts/try.sh
