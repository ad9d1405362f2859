# Tandem: the two commands a new user needs (see README.md):
#   make demo   start a local cluster with the default Qwen pair and send one chat request
#   make test   run the test suite
# Both install missing system packages (Debian/Ubuntu) and Python tools first.

SWIFT ?= swift
PYTHON ?= python3
APT_PACKAGES := libzmq3-dev libsqlite3-dev pkg-config python3 unzip iproute2 curl
PIP_PACKAGES := gguf numpy tokenizers openai pyyaml kubernetes-validate==1.37.0
DEBUG_BIN := .build/debug
RELEASE_BIN := .build/release

.PHONY: deps system-deps python-deps build build-release test-models check-imports test test-portable chaos fuzz demo bench clean

deps: system-deps python-deps

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

python-deps:
	@$(PYTHON) -c "import gguf, numpy, tokenizers, openai, yaml, kubernetes_validate" 2>/dev/null || { \
	  echo "Installing Python packages: $(PIP_PACKAGES)"; \
	  $(PYTHON) -m pip install -q $(PIP_PACKAGES) || $(PYTHON) -m pip install -q --break-system-packages $(PIP_PACKAGES); }

build: deps
	$(SWIFT) build

build-release: deps
	$(SWIFT) build -c release

# The test suite needs only the small model (93 MB); Qwen-dependent tests skip visibly without it.
test-models: build
	$(DEBUG_BIN)/tandem models fetch smollm2-135m-instruct

# Package.swift declares exactly the modules each target's sources import (scripts/check-imports.py).
check-imports: system-deps
	$(PYTHON) scripts/check-imports.py

test: check-imports test-models
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel
	$(MAKE) test-portable

# The portable Swift SIMD kernels (what arm64 builds run) on this machine: an x86 build with the
# x86 kernels compiled out (README "Platforms"), in its own scratch path so neither build
# invalidates the other. Runs the kernel and engine suites, including the bit-for-bit
# batch-invariance tests of the matmul kernels and of the model forward pass.
PORTABLE := --scratch-path .build-portable -Xswiftc -DTANDEM_PORTABLE_KERNELS
PORTABLE_SUITES := TandemEngineTests|TandemSpeculativeTests

test-portable: test-models
	$(SWIFT) build --build-tests $(PORTABLE)
	$(SWIFT) test --skip-build $(PORTABLE) --no-parallel --filter '$(PORTABLE_SUITES)'

# The fault harness for minutes (the test suite runs a short one): SmolLM2-135M as target and its Q4_0
# requantisation as a different draft model; kills, freezes and restarts replicas under load and fails
# on any lost or changed token, failed request or crashed replica (docs/chaos.md).
CHAOS_SECONDS ?= 300
CHAOS_DRAFT := .build/chaos-draft-smollm2-Q4_0.gguf

chaos: test-models
	@[ -f $(CHAOS_DRAFT) ] || $(DEBUG_BIN)/tandem quantize --in smollm2-135m-instruct --out $(CHAOS_DRAFT) --type Q4_0
	$(DEBUG_BIN)/tandem chaos --target-model smollm2-135m-instruct --draft-model $(CHAOS_DRAFT) \
	  --duration $(CHAOS_SECONDS) --json chaos-report.json

# Random and mutated bus frames to every bound socket of a cluster of real processes, FUZZ_FRAMES per
# socket (the test suite sends 1,500): every request answered, no process dies (Tests/ServiceTests/ClusterFuzzTests.swift).
FUZZ_FRAMES ?= 100000

fuzz: check-imports test-models
	$(SWIFT) build --build-tests
	TANDEM_FUZZ_FRAMES=$(FUZZ_FRAMES) $(SWIFT) test --skip-build --no-parallel --filter ClusterFuzzTests

demo: build-release
	$(RELEASE_BIN)/tandem models fetch qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct
	$(RELEASE_BIN)/tandem up --demo

bench: build-release
	$(RELEASE_BIN)/tandem bench bus
	$(RELEASE_BIN)/tandem bench engine --model qwen2.5-coder-1.5b-instruct

clean:
	rm -rf .build .build-portable tandem-data
