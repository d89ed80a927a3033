#!/usr/bin/env python3
"""Split a system-wide perf profile by the traffic bench's runs.

The traffic bench prints each run's CLOCK_MONOTONIC window; record with
the same clock beside it, then give this script the bench's output and the
profile. It prints, per configuration, the samples per 1,000 connections
of each symbol, and the symbols whose cost differs most between c and b.

  sudo bash bench/run.sh -bench traffic -tput=false -rounds 400 -conn-dur 100ms | tee bench.log &
  # once the rounds have started:
  sudo perf record -a -k CLOCK_MONOTONIC -F 1999 -o perf.data -- sleep 150
  python3 bench/perf-split.py bench.log perf.data
"""
import bisect
import collections
import re
import subprocess
import sys

log, data = sys.argv[1], sys.argv[2]
runs = []  # (start, end, configuration letter, conn/s)
for line in open(log):
    m = re.match(r'round \d+ (\S+)\s+(\d+) conn/s.*CLOCK_MONOTONIC ([\d.]+)-([\d.]+)', line)
    if m:
        runs.append((float(m.group(3)), float(m.group(4)), m.group(1)[0], float(m.group(2))))
runs.sort()
starts = [r[0] for r in runs]

samples = {c: collections.Counter() for c in 'abc'}
seen = set()
out = subprocess.run(['perf', 'script', '-i', data, '-F', 'time,ip,sym', '--ns'],
                     capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    m = re.match(r'\s*([\d.]+):\s*\S+\s+(.*)', line)
    if not m:
        continue
    t, sym = float(m.group(1)), m.group(2).strip() or '?'
    i = bisect.bisect_right(starts, t) - 1
    if i < 0 or t > runs[i][1]:
        continue  # between runs
    samples[runs[i][2]][sym] += 1
    seen.add(i)

conns = collections.Counter()
for i in seen:
    start, end, cfg, rate = runs[i]
    conns[cfg] += rate * (end - start)
per = {c: {s: n / conns[c] * 1000 for s, n in samples[c].items()} for c in 'abc' if conns[c]}

def total(c, pred):
    return sum(v for s, v in per[c].items() if pred(s))

idle = lambda s: 'halt' in s or s.startswith('cpuidle') or s == 'default_idle'
nft = lambda s: s.startswith('nft_') or s in ('jhash', 'bsearch', 'memcmp')
print('runs in the profile: %d; samples per 1,000 connections' % len(seen))
for c in per:
    print('%s: %.0f connections, busy %.2f, idle %.2f, nftables %.2f' % (
        c, conns[c], total(c, lambda s: not idle(s)), total(c, idle), total(c, nft)))
if 'b' in per and 'c' in per:
    diff = sorted(((per['c'].get(s, 0) - per['b'].get(s, 0), s) for s in set(per['b']) | set(per['c'])), reverse=True)
    print('\nc - b, largest first:')
    for d, s in diff[:25] + [(0, '...')] + diff[-10:]:
        print('%+7.3f  %s' % (d, s))
