# The two commands a newcomer needs (run as root on a Debian machine):
#   make lab    bring up the whole stack in local containers and show it answering
#   make test   lint, syntax-check, and run every molecule scenario
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Mitogen's linear strategy (.config/ansible/strategy/mitogen_linear.py): one
# persistent interpreter per host instead of a new session and Python per task.
# ANSIBLE_STRATEGY=linear make ... runs Ansible's own.
export ANSIBLE_STRATEGY_PLUGINS := $(CURDIR)/.config/ansible/strategy
export ANSIBLE_STRATEGY ?= mitogen_linear
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
LAB_IMAGES ?= pystack/debian:trixie pystack/debian:bookworm pystack/debian:bullseye pystack/debian:forky
# Scenarios `make test` runs, in order (default: every directory with a molecule.yml).
SCENARIOS ?=

.PHONY: help venv collections collection engine tools images lab lab-down lint syntax unit audit molecule test clean
help:
	@echo "make lab       bring up the lab stack (containers) and converge it"
	@echo "make lab-down  remove the lab containers and network"
	@echo "make test      yamllint, ansible-lint, syntax checks and every molecule scenario"
	@echo "make collection  build the pystack.stack collection archive into .cache/collection/"
	@echo "make lint | syntax | unit | audit | molecule [SCENARIOS='common data']"

$(VENV)/.stamp: requirements.txt constraints.txt
	@command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3 python3-venv)"; exit 1; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "python3 venv support is missing: apt-get install python3-venv"; exit 1; fi; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

venv: $(VENV)/.stamp

collections: venv
	@$(PY) scripts/check-collections

# The roles and playbooks as the collection pystack.stack (galaxy.yml).
collection: venv
	@scripts/collection

engine:
	@scripts/lab-engine

tools:
	@scripts/host-tools

images: engine
	@scripts/lab-image $(LAB_IMAGES)

lab: venv collections engine
	@start=$$SECONDS; \
	ansible-playbook playbooks/lab.yml && \
	ansible-playbook -i inventories/lab playbooks/site.yml && \
	echo "make lab: converged in $$((SECONDS - start))s" && \
	scripts/lab-smoke

lab-down: venv
	ansible-playbook playbooks/lab.yml -e lab_state=absent

lint: venv
	yamllint --strict .
	ansible-lint --profile production
	ruff check . scripts/check-collections
	ruff format --check . scripts/check-collections

syntax: venv
	@for pb in playbooks/*.yml; do \
	  ansible-playbook -i inventories/lab --syntax-check "$$pb" >/dev/null || { echo "syntax: $$pb FAILED"; exit 1; }; \
	  echo "syntax: $$pb ok"; \
	done

unit: venv
	@scripts/app-unit

# pip-audit over every lock of the reference apps, for each Python they serve
# (exit 1: a fixed release exists; 77: some pins could not be audited).
audit: venv
	@python3 app_src/audit

molecule: venv collections tools images
	@scripts/run-scenarios $(SCENARIOS)

test: venv collections tools engine images
	@scripts/test $(SCENARIOS)

clean: lab-down
	rm -rf $(VENV) .cache
