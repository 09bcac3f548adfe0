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

try:
	./scripts/try.sh
