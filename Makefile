# SendPersonal: build, test and run the local stack.
#
#   make demo   walk the merchant journey against the local stack (moto + sandbox + local runner)
#   make test   lint the template, then every Rust test and the sandbox fidelity tests
#   make build  release bootstrap per function (cargo-lambda): target/lambda/<fn>/bootstrap
#   make bench  local benchmarks, then cold starts of every bootstrap against a Runtime API emulator
#   make console  build the merchant console and serve it with the whole local stack (Ctrl-C stops)
#
# Every target installs what it needs (.venv from infra/requirements.txt) on a fresh machine.
# Targets that start moto always stop it again, also when a step fails.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.NOTPARALLEL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

export PATH := $(HOME)/.cargo/bin:$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR ?= auto

VENV       := .venv
VENV_STAMP := $(VENV)/.requirements-installed
PYTHON     := $(VENV)/bin/python
# The AWS CLI (console upload) and shellcheck in a venv of their own: awscli pins botocore to
# one exact version, which would fight the one moto and SAM resolve in .venv.
DEPLOY_VENV       := .venv-deploy
DEPLOY_VENV_STAMP := $(DEPLOY_VENV)/.requirements-installed
# Stack `make deploy` creates and publishes the console to (default: samconfig.toml's, else sendpersonal).
STACK_NAME ?= $(or $(shell sed -n 's/^stack_name *= *"\(.*\)"/\1/p' samconfig.toml 2>/dev/null | head -n 1),sendpersonal)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# Lambda binaries: the BuildProperties.Binary names in template.yaml (one source of truth).
LAMBDAS := $(shell sed -n 's/^ *Binary: *//p' template.yaml)
# The hello-world lambda_runtime baseline `make bench` compares cold starts with.
BASELINE := lambda-hello
# Lambda architecture for `make build`; the template's Architecture parameter defaults to it.
# arm64 needs the aarch64-unknown-linux-gnu Rust target (not installable on this machine).
ARCH ?= x86_64
LAMBDA_ARCH_FLAG := $(if $(filter arm64,$(ARCH)),--arm64,--x86-64)

# Local AWS (moto) and the vendor specs the sandbox is checked against.
MOTO_PORT ?= 5055
SPECS_DIR ?= $(abspath ../shared/specs)
FIDELITY_DIR := tests/fidelity

# The merchant console (console/): Node's packages from package-lock.json, its build in
# console/dist, and Debian's Chromium for the browser tests (no browser download: Playwright
# drives /usr/bin/chromium).
CONSOLE_DIR   := console
CONSOLE_STAMP := $(CONSOLE_DIR)/node_modules/.package-lock.json
CONSOLE_PORT  ?= 5173
SUDO          := $(if $(filter 0,$(shell id -u)),,sudo)

# Environment of everything that talks to the local stack: every AWS SDK call goes to moto
# with fake credentials; nothing can reach a real account.
define LOCAL_ENV
export MOTO_PORT='$(MOTO_PORT)'
export AWS_ENDPOINT_URL='http://127.0.0.1:$(MOTO_PORT)'
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true
export SPECS_DIR='$(SPECS_DIR)'
export SANDBOX_BIN='$(abspath $(TARGET_DIR))/debug/sandbox'
export AWS_CLI='$(abspath $(DEPLOY_VENV))/bin/aws'
export RUST_BACKTRACE=1
endef

# Start moto for the rest of the recipe and stop it when the recipe's shell exits.
define WITH_LOCAL_AWS
$(LOCAL_ENV)
infra/local-aws.sh start
trap 'infra/local-aws.sh stop' EXIT
endef

# The fidelity tests start target/debug/sandbox themselves (or use SANDBOX_URL). No test file
# yet means nothing to run; test files that collect nothing (pytest exit 5) are an error.
define RUN_FIDELITY
if compgen -G '$(FIDELITY_DIR)/test_*.py' >/dev/null || compgen -G '$(FIDELITY_DIR)/*_test.py' >/dev/null; then
  test -d "$$SPECS_DIR" || { echo "SPECS_DIR=$$SPECS_DIR does not exist (vendor specs for the fidelity tests)" >&2; exit 1; }
  rc=0
  $(PYTHON) -m pytest -p no:cacheprovider -q $(FIDELITY_DIR) || rc=$$?
  if [[ $$rc -eq 5 ]]; then echo "pytest collected no tests from $(FIDELITY_DIR) although test files exist" >&2; fi
  if [[ $$rc -ne 0 ]]; then exit $$rc; fi
else
  echo "pytest: no test files in $(FIDELITY_DIR) yet; skipped"
fi
endef

.PHONY: console console-deps console-build console-api console-api-check chromium help venv venv-deploy deploy-console build build-lambda build-debug lint test pytest-fidelity demo bench fmt fmt-check clippy deploy local-aws-start local-aws-stop clean-local

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

venv: $(VENV_STAMP) ## create .venv with the pinned local tooling (moto, cfn-lint, sam, cargo-lambda, pytest)

$(VENV_STAMP): infra/requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

venv-deploy: $(DEPLOY_VENV_STAMP) ## create .venv-deploy with the AWS CLI and shellcheck (infra/requirements-deploy.txt)

$(DEPLOY_VENV_STAMP): infra/requirements-deploy.txt
	test -x $(DEPLOY_VENV)/bin/python || python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-deploy.txt
	touch $@

build: venv ## release bootstrap per function (cargo-lambda): target/lambda/<fn>/bootstrap
	PATH="$(abspath $(VENV))/bin:$$PATH" cargo lambda build --release $(LAMBDA_ARCH_FLAG) $(addprefix --bin ,$(LAMBDAS) $(BASELINE))
	for fn in $(LAMBDAS) $(BASELINE); do
	  test -f "$(TARGET_DIR)/lambda/$$fn/bootstrap" || { echo "missing $(TARGET_DIR)/lambda/$$fn/bootstrap" >&2; exit 1; }
	  ls -l "$(TARGET_DIR)/lambda/$$fn/bootstrap"
	done

build-lambda: build ## same as build (kept for scripts that call it)

build-debug: ## debug build of every binary for the tests and the local stack (sandbox, local runner)
	cargo build --workspace --bins

lint: venv venv-deploy ## cfn-lint and sam validate --lint on template.yaml (offline), shellcheck on infra/
	$(DEPLOY_VENV)/bin/shellcheck infra/*.sh
	$(VENV)/bin/cfn-lint template.yaml
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	  $(VENV)/bin/sam validate --lint --region us-east-1 --template-file template.yaml

test: venv lint build-debug console-build console-api-check chromium ## lint, then cargo test (the console's browser journey included) and the fidelity tests against moto + sandbox
	$(WITH_LOCAL_AWS)
	# Model latency and import jobs at 1/50 of the vendors' time: tests assert behaviour, the
	# benchmarks (make bench) measure at the vendors' own time.
	export SANDBOX_VENDOR_TIME_SCALE=0.02
	cargo test --workspace
	$(RUN_FIDELITY)

# Run by `test` with moto up; on its own it runs the fidelity tests only (they need no AWS).
pytest-fidelity: venv ## sandbox fidelity tests (pytest, tests/fidelity) against the vendor specs
	$(LOCAL_ENV)
	$(RUN_FIDELITY)

demo: venv ## start moto, then the sandbox and local API in-process, and walk the merchant journey
	$(WITH_LOCAL_AWS)
	cargo run -p local-runner --bin demo

bench: venv build console-build chromium ## benchmarks against moto + sandbox: catalog sync and personalisation, the console's first load, then cold starts of every bootstrap
	$(WITH_LOCAL_AWS)
	cargo run --profile bench-local -p local-runner --bin bench
	cargo run --profile bench-local -p lambda-bench --features harness --bin lambda-bench -- --lambda-dir "$(abspath $(TARGET_DIR))/lambda"

local-aws-start: venv ## start moto on MOTO_PORT and leave it running (stop with local-aws-stop)
	MOTO_PORT=$(MOTO_PORT) infra/local-aws.sh start

local-aws-stop: ## stop the moto started by local-aws-start
	MOTO_PORT=$(MOTO_PORT) infra/local-aws.sh stop

fmt: ## format the Rust code
	cargo fmt --all

fmt-check: ## check Rust formatting
	cargo fmt --all -- --check

clippy: ## lint the Rust code
	cargo clippy --workspace --all-targets -- -D warnings

deploy: venv venv-deploy ## build with SAM (cargo-lambda), deploy (asking for parameters), then publish the console
	export PATH="$(abspath $(VENV))/bin:$$PATH"
	sam build --beta-features
	sam deploy --guided --stack-name '$(STACK_NAME)'
	# The name may have been changed at the prompt: samconfig.toml has the one deployed.
	stack="$$(sed -n 's/^stack_name *= *"\(.*\)"/\1/p' samconfig.toml 2>/dev/null | head -n 1)"
	PATH="$(abspath $(DEPLOY_VENV))/bin:$$PATH" infra/deploy-console.sh --stack "$${stack:-$(STACK_NAME)}"

deploy-console: venv-deploy ## build console/ and publish it to the deployed stack STACK_NAME (config.json from its outputs)
	export PATH="$(abspath $(DEPLOY_VENV))/bin:$$PATH"
	infra/deploy-console.sh --stack '$(STACK_NAME)'

clean-local: ## stop moto and remove local state (.local, .aws-sam, target/lambda)
	infra/local-aws.sh stop
	rm -rf .local .aws-sam $(TARGET_DIR)/lambda

$(CONSOLE_STAMP): $(CONSOLE_DIR)/package.json $(CONSOLE_DIR)/package-lock.json
	(cd $(CONSOLE_DIR) && npm ci --no-audit --no-fund --loglevel=error)
	touch $@

console-deps: $(CONSOLE_STAMP) ## install the console's Node packages (locked)

console-build: console-deps ## type-check and build the console into console/dist
	(cd $(CONSOLE_DIR) && npm run --silent build)

# The console's API types come from the API's own OpenAPI document (what GET /openapi.json serves).
console-api: console-deps ## regenerate console/src/api/schema.d.ts from the API's OpenAPI document
	cargo run --quiet -p local-runner --bin local-runner -- --openapi > $(CONSOLE_DIR)/openapi.json
	(cd $(CONSOLE_DIR) && npx --no-install openapi-typescript openapi.json -o src/api/schema.d.ts)

console-api-check: console-deps ## fail when console/src/api/schema.d.ts is not what the API's OpenAPI document generates
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT
	cargo run --quiet -p local-runner --bin local-runner -- --openapi > "$$tmp/openapi.json"
	(cd $(CONSOLE_DIR) && npx --no-install openapi-typescript "$$tmp/openapi.json" -o "$$tmp/schema.d.ts" >/dev/null 2>&1)
	cmp -s "$$tmp/schema.d.ts" $(CONSOLE_DIR)/src/api/schema.d.ts || { echo "console/src/api/schema.d.ts is stale: run make console-api" >&2; exit 1; }

chromium: ## install Debian's headless Chromium for the browser tests when missing
	if ! command -v chromium >/dev/null; then
	  $(SUDO) apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
	fi
	chromium --version

console: venv console-build ## build the console, start moto + the whole local stack + the console, print its URL and the demo accounts; Ctrl-C stops
	$(WITH_LOCAL_AWS)
	cargo run -p local-runner --bin local-runner -- --console --console-port $(CONSOLE_PORT) --schedules
