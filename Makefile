PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up test lint typecheck bench soak clean

# The broker is Apache Kafka from Maven Central (deploy/kafka/pom.xml): a JDK and Maven from Debian's packages
# where missing, its jars resolved once into the environment.
$(STAMP): pyproject.toml constraints.txt deploy/kafka/pom.xml
	@command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless maven)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -c 'from acoflow.kafka_node import resolve_jars; resolve_jars()'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/acoflow demo

up: $(STAMP)
	$(BIN)/acoflow up

# The console's browser test drives Debian's chromium (never a downloaded browser); promtool checks the alert rules.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the console's browser test will fail"
	@command -v promtool >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) \
		|| echo "prometheus could not be installed: the rules test will fail"
	$(BIN)/python -m pytest -q

# The benchmark is a script, not a test: CI does not run it.
bench: $(STAMP)
	$(BIN)/python -m bench.pipeline

# A bounded steady feed (30 minutes at 1,000 lines/s), per 5-minute window: CPU per line, p99, memory.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy shared services readers acoflow bench

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
