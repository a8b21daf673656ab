# The two commands of the README are `make demo` and `make test`; each installs what it needs.
PYTHON ?= python3
EXTRAS ?= cpu,dev
PARAMS ?= params/toy-demo.yaml
STAMP := .install-stamp
PIP := $(PYTHON) -m pip

.PHONY: install demo study power smoke test test-unit test-integration test-integration-first test-notebooks test-report test-unit-and-notebooks chromium bench bench-env gpu-check clean-notebooks

# Idempotent: re-installs only when pyproject.toml changed (stamp keyed on its hash).
install:
	@want="$$(cat pyproject.toml | sha1sum | cut -c1-16)-$(EXTRAS)"; \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  $(PIP) install -q --disable-pip-version-check -e ".[$(EXTRAS)]" || exit 1; \
	  $(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null; \
	  $(PYTHON) -c "import torch, transformers, peft, sgpo_lib" && echo "$$want" > $(STAMP); \
	else echo "install: up to date"; fi

demo: install
	$(PYTHON) -m sgpo_lib pipeline --params $(PARAMS)

# The study of the paper's unknown choices (issue 25): params/toy-unknowns.yaml, the demo's world, budget and
# content-keyed cache (students, warm-ups); SGPO, four of the paper's ablations and every row of experiment.unknowns
# (the runs the demo already made are copied from its folder: experiment.reuse_finished_runs).
study: install
	$(PYTHON) -m sgpo_lib pipeline --params params/toy-unknowns.yaml

# The demo's main table with the power issue 25 (item 5) asks for (params/toy-power.yaml): 5 seeds and
# 256 test problems per family, new students for that test split; no ablations, no scaling study.
power: install
	$(PYTHON) -m sgpo_lib pipeline --params params/toy-power.yaml

smoke: install
	$(PYTHON) -m sgpo_lib pipeline --params params/toy-smoke.yaml

# The three suites, two at a time: the integration suite beside the unit suite and then the
# notebooks, one thread each (two processes of two OpenMP threads on two cores spin against each
# other: 8 min instead of 6). Each suite prints its report as it ends.
# The integration tests marked `second_stream` run after the report, so both streams take about as long
# (2026-12-07, 2 cores: integration 543 s against 454 s for the other three before the move).
test: install
	@OMP_NUM_THREADS=1 $(MAKE) --no-print-directory -j2 --output-sync=target test-integration-first test-unit-and-notebooks

test-unit-and-notebooks: test-unit
	@$(MAKE) --no-print-directory test-notebooks
	@$(MAKE) --no-print-directory test-report
	$(PYTHON) -m pytest -m "$(INTEGRATION) and second_stream" tests -q -p no:cacheprovider --durations=3

# Seconds: the library's logic, losses against float64 references, configs, grading, fakes.
test-unit:
	$(PYTHON) -m pytest -m "not slow and not gpu and not integration" --doctest-modules sgpo_lib tests -q -p no:cacheprovider --durations=5

# Minutes: real vLLM-CPU engines, the accelerate launcher, SIGKILLed runs, the real-path notebooks.
INTEGRATION := integration and not browser and not slow and not gpu
test-integration:
	$(PYTHON) -m pytest -m "$(INTEGRATION)" tests -q -p no:cacheprovider --durations=10

test-integration-first:
	$(PYTHON) -m pytest -m "$(INTEGRATION) and not second_stream" tests -q -p no:cacheprovider --durations=10

test-notebooks:
	$(PYTHON) -m pytest --nbval-lax --nbval-current-env notebooks/ -q -p no:cacheprovider

# After the notebooks (their smoke run is cached, so `make smoke` only re-runs the notebooks): the
# report in headless Chromium, the executed notebooks' outputs. The test skips without Chromium.
test-report: chromium
	$(PYTHON) -m pytest -m browser tests -q -p no:cacheprovider

# Chromium for test-report: the Debian package, installed when missing, run as root and apt is there.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium: installing the Debian package for the report test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium: apt-get failed; the report test will skip"; \
	else echo "chromium: not installed and not root with apt-get; the report test will skip"; fi

bench: install
	$(PYTHON) -m bench.run_all

# About a minute: CPU facts and tokens/s of pretraining and training, to compare with the README's machine.
bench-env: install
	$(PYTHON) -m bench.bench_env

# On a CUDA machine with the GPU environment (environment.yml): the real-path stages, no hub.
gpu-check:
	$(PYTHON) -m bench.gpu_check

clean-notebooks:
	$(PYTHON) -m sgpo_lib.workflow.nbclean notebooks/
