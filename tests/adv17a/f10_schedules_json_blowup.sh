#!/bin/bash
# `--next` is capped at 1000 per schedule, but the number of schedules is not: a 170 KB
# schedules file of 2000 schedules makes `runbook schedules --next 1000 --format json` take
# ~3.3 GB of memory and over a minute (measured: 77 s, 3,349,412 KB max RSS). A 1.7 MB file of
# 20,000 schedules -- which `runbook check` accepts in 7 s -- would need ~33 GB.
# Run under a 5 GB address-space limit (RSS stays ~3.3 GB) to protect the machine.
set -u
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/runbook}
D=$(mktemp -d /tmp/adv17a-f10.XXXX); cd "$D"; mkdir .git
printf '[runbook]\nname = "r"\n[steps.a]\nrun = "echo ok"\n' > r.toml
python3 -c "
for i in range(${N:-2000}): print(f'[schedule.s{i}]\nrunbook = \"r.toml\"\ncron = \"{i%60} 2 * * *\"\ntime-zone = \"Europe/Madrid\"\n')" > s.toml
ls -la s.toml
$B check s.toml
( ulimit -v 5000000; /usr/bin/time -f "%e s, max RSS %M KB" timeout 300 $B schedules s.toml --next 1000 --format json | wc -c )
