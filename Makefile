# One target per habit. `make test` is the README's test command and what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# sam lives in its own environment: its pins must not steer the project's.
SAM_VENV := .tools/sam
SAM      := $(SAM_VENV)/bin/sam
# sam build looks for the template's runtime (python3.13) on PATH; pyenv offers it when asked.
SAM_PYTHONS ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0

.PHONY: venv test unit integration lint format validate build clean demo

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

lint: venv $(SAM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0

validate: $(SAM)
	$(SAM) validate --lint --template template.yaml --region us-east-1

build: $(SAM)
	PYENV_VERSION=$(SAM_PYTHONS) $(SAM) build --template template.yaml

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .ruff_cache .hypothesis out

# The README's first command: the whole product offline, results in ./out/.
demo: venv
	$(BIN)/backdrop demo
