#!/bin/bash
# XLA flag sets alternated in blocks, one process each (flags are read at start-up)
cd /work/main
for block in 1 2; do
  for flags in "" "--xla_cpu_use_onednn=true" "--xla_cpu_use_xnnpack=true" "--xla_cpu_ftz=true"; do
    XLA_FLAGS="$flags" .venv/bin/python docs/results/experiments/jax_flags.py 20 2>/dev/null | tail -1
  done
done
