"""Adds up the closing lines of pytest logs (scripts/run_tests.sh runs the suite as two processes) and prints one
line: ``all: N passed, N failed, N skipped`` (errors count as failed)."""
import re
import sys

total = {"passed": 0, "failed": 0, "skipped": 0}
for log in sys.argv[1:]:
    closing = [line for line in open(log, errors="replace") if re.match(r"^=+ .* in [\d.]+s", line)][-1:]
    if not closing:
        total["failed"] += 1  # a process that never reached its summary
        continue
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)", closing[0]):
        total["failed" if what.startswith("error") else what] += int(n)
print(f"all: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
