VENV ?= .venv
PY := $(VENV)/bin/python
TOOLS ?= .tools
export RDS_HA_TABLE ?= rds-ha
export SAM_CLI_TELEMETRY = 0
# sam build (no Docker) needs the functions' runtime, python3.12, on PATH.
# A real interpreter, not a pyenv shim (sam build hangs on the shim).
PY312 := $(shell ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -n 1 || command -v python3.12)
INFRA_TEMPLATES := template.yaml $(wildcard infra/*.yaml)

.PHONY: setup demo test reliability lint infra-check bench clean probe-ca contract

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rds-ha demo

test: setup
	$(PY) -m pytest -n 2

reliability: setup
	$(PY) -m pytest --reliability tests/reliability

# The AWS contract ledger (tests/contract_ledger.yaml) against what the last whole `make test` sent (it runs
# the suite first when there is no such run yet); its last line counts what is unreviewed.
contract: setup
	@test -f .contract/sent.json || $(PY) -m pytest -n 2
	$(PY) -m tests.contract

# Figures in BENCHMARKS.md (a few minutes; speed is asserted nowhere in the tests).
bench: setup
	$(PY) bench/failover_latency.py 20
	$(PY) bench/failover_latency.py 5 300
	$(PY) bench/cold_start.py 10
	$(PY) bench/fleet_reconcile.py 10 100 500
	$(PY) bench/detection.py 10
	$(PY) bench/probe_checks.py 50
	$(PY) bench/fence_bound.py 30

# RDS's global CA bundle into the probe's layer (tls verify-full, the default), before `sam build` of a stack
# with ProbeSubnetIds. Run where AWS's truststore is reachable; the probe withholds its verdict without it.
probe-ca:
	mkdir -p infra/layers/probe/rds_ca
	curl -fsSL https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem -o infra/layers/probe/rds_ca/global-bundle.pem
	grep -c 'BEGIN CERTIFICATE' infra/layers/probe/rds_ca/global-bundle.pem

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check functions tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -c pyproject.toml -r functions -q
	$(VENV)/bin/cfn-lint $(INFRA_TEMPLATES)

# AWS's own template tools, each in its own virtualenv (the SAM CLI pins its own boto3).
$(TOOLS)/sam/.installed:
	python3 -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet aws-sam-cli
	touch $@

$(TOOLS)/checkov/.installed:
	python3 -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet checkov
	touch $@

infra-check: setup $(TOOLS)/sam/.installed $(TOOLS)/checkov/.installed
	$(VENV)/bin/cfn-lint $(INFRA_TEMPLATES)
	AWS_DEFAULT_REGION=us-east-1 $(TOOLS)/sam/bin/sam validate --lint --template template.yaml
	@test -n "$(PY312)" || { echo "sam build needs python3.12 on PATH"; exit 1; }
	PATH=$(dir $(PY312)):$$PATH $(TOOLS)/sam/bin/sam build --template template.yaml --build-dir .aws-sam/build
	@# The functions run on arm64: every native library in the probe's driver layer must be aarch64 (ELF e_machine 0xB7).
	$(PY) -c "import pathlib,sys; so=list(pathlib.Path('.aws-sam/build/ProbeDriversLayer').rglob('*.so*')); bad=[p.name for p in so if p.read_bytes()[18:20]!=bytes([0xB7,0])]; sys.exit(f'not arm64: {bad[:5]}' if bad or not so else print(f'probe layer: {len(so)} native libraries, all aarch64'))"
	$(PY) -c "import pathlib,shutil,sys; [print(f'artifact {d.name}: {pathlib.Path(shutil.make_archive(str(d), \"zip\", d)).stat().st_size/1e6:.1f} MB zipped') for d in sorted(pathlib.Path('.aws-sam/build').iterdir()) if d.is_dir()]"
	$(TOOLS)/checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation $(addprefix -f ,$(INFRA_TEMPLATES))

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
