# One target per habit. `make test` is the README's test command and what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# sam and checkov live in environments of their own: their pins must not steer the project's.
SAM_VENV := .tools/sam
SAM      := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .tools/checkov
CHECKOV      := $(CHECKOV_VENV)/bin/checkov
# The fault soak's size: `make soak` runs the full 10,000 (under an hour); CI runs a smaller one.
SOAK_PAIRS ?= 10000
# sam build looks for the template's runtime (python3.13) on PATH; pyenv offers it when asked.
SAM_PYTHONS ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0

.PHONY: venv test unit integration lint typecheck check format validate build clean demo soak bench

# The first install takes about a minute, so it says what it installs. On a terminal, one line
# counts the packages as pip collects them; in a CI log only the steps and the total show. pip's
# whole output goes to $(PIP_LOG), and its end is printed when it fails.
PIP_LOG := $(VENV)/pip-install.log
PIP_PROGRESS := awk -v tty="$$tty" '\
  /^(Collecting|Obtaining) / { n++; if (tty) printf "\r\033[K  %3d  %s", n, substr($$2, 1, 60); next } \
  /^Successfully installed / { printf "%s  %d packages installed\n", (tty ? "\r\033[K" : ""), NF - 2 }'

$(STAMP): SHELL := /bin/bash
$(STAMP): .SHELLFLAGS := -o pipefail -c
$(STAMP): pyproject.toml layers/dependencies/requirements.txt
	@echo "Creating $(VENV) ($$($(PYTHON) --version)); the first install takes about a minute"
	@$(PYTHON) -m venv $(VENV)
	@echo "Upgrading pip"
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing the function's dependencies (layers/dependencies/requirements.txt)" \
	  "and backdrop with its dev tools (pyproject.toml); pip's log: $(PIP_LOG)"
	@tty=; [ -t 1 ] && tty=1; \
	  $(BIN)/pip install --progress-bar off -r layers/dependencies/requirements.txt -e '.[dev]' 2>&1 \
	  | tee $(PIP_LOG) | $(PIP_PROGRESS) \
	  || { echo "pip failed; the end of $(PIP_LOG):"; tail -n 25 $(PIP_LOG); exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# ruff includes the complexity gate (C90 at 10, pyproject.toml); mypy checks every annotation.
lint: venv $(SAM) $(CHECKOV) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

typecheck: venv
	$(BIN)/mypy

# Everything .ci/run runs but the soak: the gates, the build and the tests, in one command.
check: lint build test

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30

# Uploads through the local stack while the emulated API fails; accounts for every one.
soak: venv
	$(BIN)/python -m tests.soak.soak --pairs $(SOAK_PAIRS) --out out/soak

# Each figure against a baseline measured in the same run; writes docs/PERFORMANCE.md.
bench: venv $(SAM)
	PYENV_VERSION=$(SAM_PYTHONS) $(SAM) build --template template.yaml
	$(BIN)/python -m bench.run

validate: $(SAM)
	$(SAM) validate --lint --template template.yaml --region us-east-1

build: $(SAM)
	PYENV_VERSION=$(SAM_PYTHONS) $(SAM) build --template template.yaml

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .ruff_cache .hypothesis out

# The README's first command: the whole product offline, results in ./out/.
demo: venv
	$(BIN)/backdrop demo
