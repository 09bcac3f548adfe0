# `make check` is the one command that runs every test. On a fresh Debian
# machine with Go it first installs Nix and builds MinIO (cached).
GO ?= go
export NIXS3Q_REQUIRE_TOOLS := 1
export GOFLAGS := -mod=readonly
# Tests and benchmarks talk to loopback only: never let the AWS SDK probe the
# EC2 instance metadata service for credentials or a region.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: check deps fmt vet test e2e build bench try

# The MinIO that deps.sh built (or found) is handed to the tests in
# NIXS3Q_MINIO, wherever its cache directory is.
check:
	@minio="$$(./scripts/deps.sh | tail -n 1)" && test -x "$$minio" && echo "MinIO: $$minio" && \
	  NIXS3Q_MINIO="$$minio" $(MAKE) --no-print-directory fmt vet test e2e
	@echo "make check: all tests passed"

deps:
	@minio="$$(./scripts/deps.sh | tail -n 1)"; echo "MinIO: $$minio"; test -x "$$minio"

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

test:
	$(GO) test -race -count=1 ./...

e2e:
	$(GO) test -race -tags e2e -count=1 -v -timeout 15m ./e2e/

build:
	$(GO) build -o bin/ ./cmd/...

# nixs3q against its baselines (nix copy, a no-op process, zstd alone) on
# the same inputs and MinIO; see BENCHMARKS.md. About 10 minutes on 2 cores.
# BENCHFLAGS: -size small|full, -runs N, -only NAME,..., -json.
BENCHFLAGS ?=
bench:
	@minio="$$(./scripts/deps.sh | tail -n 1)" && test -x "$$minio" && \
	  NIXS3Q_MINIO="$$minio" $(GO) run ./bench $(BENCHFLAGS)

try:
	./scripts/try.sh
