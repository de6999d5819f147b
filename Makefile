# The two commands: `make poems` (the main job) and `make test`. Both install what is
# missing first: a virtual environment with torch pinned to 2.13.0 (the CPU build on this
# machine's disk; elsewhere pick the build you need) and this package with its dev extras.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: poems test install lint mutation fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

poems: $(STAMP)
	$(VENV)/bin/lm run pipelines/tang.yaml

test: $(STAMP)
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(VENV)/bin/ruff check lm tests bench

# schemathesis against a running `lm serve` (tests/serve/fuzz.sh); FUZZ_EXAMPLES sets its budget
fuzz: $(STAMP)
	tests/serve/fuzz.sh

# Mutation testing with mutmut (not part of CI: it runs long). The modules and the tests that
# must kill their mutants are [tool.mutmut] in pyproject.toml. Every run starts from a fresh
# mutants/ folder; MUTANTS narrows it to some mutants by name, e.g.
#   make mutation MUTANTS='lm.ngram.counting.*'
# then `$(VENV)/bin/mutmut results` lists the survivors and `mutmut show NAME` shows one.
MUTMUT_VERSION := 3.8.1
MUTATION_JOBS ?= 2
MUTANTS ?=

define MUTATION_SUMMARY
import collections, json, pathlib
from mutmut.stats import status_by_exit_code
columns = ["killed", "survived", "timeout", "suspicious", "no tests", "not checked"]
print(f"{'module':32}{'mutants':>8}" + "".join(f"{c:>13}" for c in columns) + f"{'score':>8}")
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    n = collections.Counter(status_by_exit_code[code] for code in codes.values())
    checked = len(codes) - n["not checked"]
    caught = n["killed"] + n["timeout"] + n["caught by type check"]
    score = f"{100 * caught / checked:.1f}%" if checked else "-"
    name = str(meta.relative_to("mutants"))[: -len(".meta")]
    print(f"{name:32}{len(codes):>8}" + "".join(f"{n[c]:>13}" for c in columns) + f"{score:>8}")
endef
export MUTATION_SUMMARY

mutation: $(STAMP)
	$(PY) -c "import importlib.metadata as m; assert m.version('mutmut') == '$(MUTMUT_VERSION)'" \
		2>/dev/null || $(PY) -m pip install --quiet mutmut==$(MUTMUT_VERSION)
	rm -rf mutants
	@start=$$(date +%s); OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/mutmut run \
		--max-children $(MUTATION_JOBS) $(MUTANTS); status=$$?; \
	$(PY) -c "$$MUTATION_SUMMARY"; echo "mutation run: $$(( $$(date +%s) - start )) s"; \
	exit $$status
