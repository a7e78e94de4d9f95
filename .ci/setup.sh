#!/usr/bin/env bash
# Set up everything the project needs from nothing; safe to run twice.
# Usage: bash .ci/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# Debian packages: host C build and static analysis, the Cortex-M4, RV32 and Xtensa lx106 toolchains and
# QEMU for the firmware tests (export/qemu.py's TARGETS name the same packages).
APT_PACKAGES=(make gcc cppcheck gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf gcc-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-system-misc
  arduino-builder arduino-core-avr arduino-ctags simavr libsimavr-dev tmux)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    # Not root: go on; what needs them says so (the demo runs without emulate, those tests skip locally).
    echo "warning: missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]})" >&2
  fi
fi

"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# torch comes from the CPU wheel on local disk when there is one (a plain index install pulls CUDA).
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${FIND_LINKS[@]}" -c .ci/constraints.txt -e ".[test]"
"$VENV/bin/python" -c "import torch, tensorflow, wfdb; assert '+cu' not in torch.__version__, torch.__version__"
