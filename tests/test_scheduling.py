"""`make test`'s two workers: each test file (a resumed notebook with its resume test) runs on one worker, so its
module fixtures are built once and nbmake's run of 01-03 is the resume test's uninterrupted run."""
import sys
import textwrap

import conftest


def test_a_notebook_joins_its_resume_test_and_every_other_file_is_its_own_group():
    assert conftest.group_of("02_qlora_gpt_neox_20b.ipynb") == "test_resume_02.py"
    assert conftest.group_of("05_methods_compared.ipynb") == "05_methods_compared.ipynb"
    assert conftest.group_of("test_budget.py") == "test_budget.py"


def test_loadgroup_keeps_a_files_tests_on_one_worker(tmp_path):
    """xdist's own loadgroup (3.8, under pytest 9.2) spread one file over both workers; ours may not."""
    import subprocess

    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("suite_conftest", {conftest.__file__!r})
        suite = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(suite)
        pytest_xdist_make_scheduler = suite.pytest_xdist_make_scheduler   # the suite's scheduler, nothing else
    """))
    (tmp_path / "test_many.py").write_text(textwrap.dedent("""
        def test_a(): pass
        def test_b(): pass
        def test_c(): pass
        def test_d(): pass
    """))
    (tmp_path / "test_other.py").write_text("def test_e(): pass\ndef test_f(): pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {}
    for line in done.stdout.splitlines():
        if " PASSED " in line and "[gw" in line:
            worker, name = line.split("]", 1)[0].strip("[ "), line.split("::")[0].rsplit(" ", 1)[-1]
            workers.setdefault(name.rsplit("/", 1)[-1], set()).add(worker)
    assert workers.get("test_many.py") and len(workers["test_many.py"]) == 1, (workers, done.stdout[-2000:])
