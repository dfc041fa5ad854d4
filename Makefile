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
# The fault soak's size: `make soak` runs the full 1,000; CI runs a smaller one.
SOAK_PAIRS ?= 1000
# sam build looks for the template's runtime (python3.13) on PATH; pyenv offers it when asked.
SAM_PYTHONS ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0

.PHONY: venv test unit integration lint format validate build clean demo soak bench

$(STAMP): pyproject.toml layers/dependencies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r layers/dependencies/requirements.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

lint: venv $(SAM) $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

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
