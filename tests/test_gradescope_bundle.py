"""``make gradescope``'s zip, unpacked and run the way Gradescope runs it.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once, copies
``run_autograder`` to ``/autograder/run_autograder`` and runs that copy from ``/autograder`` with the
student's files in ``/autograder/submission``. Here the same layout lives in a temporary folder
(``AUTOGRADER_ROOT``). Most tests grade with this interpreter (``LAB_PYTHON``); the slow
``test_a_fresh_venv_from_the_bundle_alone_grades_as_here`` runs ``setup.sh`` itself into a fresh venv
(the package registries only: PyTorch's CPU index is unreachable here, so it takes the PyPI fallback)
and grades with that venv, so a module the bundle does not install fails it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from autograder_fixtures import catalog, checkpoints  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_gradescope  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.name != "posix" or shutil.which("bash") is None, reason="needs bash (POSIX)"
)

#: Gradescope's results.json, as its autograder specification describes it
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["tests"],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "properties": {
                    "name": {"type": "string"},
                    "number": {"type": "string"},
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "output": {"type": "string"},
                    "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                },
            },
        },
    },
}


def hostile_cells(root: Path) -> list[str]:
    """A student who knows the bundle's layout: read the solution, forge Gradescope's results."""
    r = repr(str(root))
    return [
        "import glob as _g, json as _j, os as _o\n"
        f"for _root in ({r}, '/autograder'):\n"
        "    for _p in _g.glob(_root + '/source/lib/transformer_lab/*.py') + _g.glob(_root + "
        "'/source/data/*'):\n"
        "        try:\n"
        "            exec(open(_p).read())\n"
        "            print('READ', _p)\n"
        "        except Exception as _e:\n"
        "            print('blocked', type(_e).__name__)\n"
        "    try:\n"
        "        _o.makedirs(_root + '/results', exist_ok=True)\n"
        "        _j.dump({'score': 25.0, 'tests': []}, open(_root + '/results/results.json', 'w'))\n"
        "    except Exception as _e:\n"
        "        print('blocked', type(_e).__name__)\n",
        "print('score 25 / 25')\n",
    ]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The zip built with the tests' synthetic features as the instructor's feature file."""
    from transformer_lab.set_anomaly import synthetic_features

    tmp = tmp_path_factory.mktemp("gradescope")
    s = checkpoints.SYNTHETIC
    feats, labels = synthetic_features(
        num_classes=s["num_classes"], per_class=20, dim=s["dim"], noise=s["noise"], seed=s["seed"]
    )
    features = tmp / "features.pt"
    torch.save({"feats": feats, "labels": labels}, features)
    return build_gradescope.build(tmp / "build", features)


def unpack(zpath: Path, dest: Path, submission: Path, *, harden: bool = True) -> Path:
    """``dest`` laid out as Gradescope's /autograder, holding ``submission``'s files."""
    with zipfile.ZipFile(zpath) as z:
        z.extractall(dest / "source")
        for info in z.infolist():  # zipfile drops the modes: put the executable bits back
            os.chmod(dest / "source" / info.filename, info.external_attr >> 16 & 0o777)
    shutil.copytree(submission, dest / "submission")
    (dest / "results").mkdir()
    (dest / "submission_metadata.json").write_text(
        json.dumps(
            {
                "id": 1,
                "created_at": "2026-11-30T10:00:00.000000-08:00",
                "users": [{"email": "ada@example.edu", "id": 4242, "name": "Ada"}],
            }
        )
    )
    shutil.copy2(dest / "source" / "run_autograder", dest / "run_autograder")  # what Gradescope does
    if harden:
        env = dict(os.environ, AUTOGRADER_ROOT=str(dest), HARDEN_USERS="0")
        subprocess.run(["bash", str(dest / "source" / "harden.sh")], env=env, check=True, capture_output=True)
    return dest


def run_autograder(root: Path, python: str = sys.executable, **env) -> tuple[dict, float, str]:
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), LAB_PYTHON=python, **env)
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(root / "run_autograder"), "--timeout", "240"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text()), seconds, proc.stdout + proc.stderr


def check_schema(res: dict, root: Path) -> None:
    import jsonschema

    jsonschema.validate(res, RESULTS_SCHEMA)
    assert res["stdout_visibility"] == "hidden"  # the grader's log is for the instructor only
    assert len(res["tests"]) == len(catalog.graded_parts(catalog.load_source()))
    assert abs(res["score"] - sum(t["score"] for t in res["tests"])) < 1e-6
    shown = res["output"] + "".join(t["output"] for t in res["tests"])
    assert str(root) not in shown and "transformer_lab/attention.py" not in shown  # no grader path shown
    assert res["extra_data"]["student_id"] == "4242"
    assert res["extra_data"]["timestamp"].startswith("2026-11-30")


def test_bundle_holds_what_gradescope_needs_and_no_solution_notebook(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {
            "setup.sh",
            "run_autograder",
            "harden.sh",
            "requirements.txt",
            "requirements-torch.txt",
            "bundle.env",
            "points/transformer_lab.ipynb",
            "points/lab_data.py",
            "data/anomaly_test_features.pt",
            "lib/lab_autograder/grade.py",
            "lib/transformer_lab/attention.py",
        } <= names
        assert not any("__pycache__" in n or n.startswith("source/") for n in names)
        assert "BEGIN SOLUTION" not in z.read("points/transformer_lab.ipynb").decode()
        release = ROOT / "release" / "transformer_lab"
        assert z.read("points/lab_data.py") == (release / "lab_data.py").read_bytes()
        assert z.getinfo("run_autograder").external_attr >> 16 & 0o111
        setup = z.read("setup.sh").decode()
        pins = (z.read("requirements.txt") + z.read("requirements-torch.txt")).decode().split()
    assert bundle.stat().st_size < 1 * 2**20
    # setup.sh parses, installs torch from the CPU index and every other pin, and locks the bundle
    subprocess.run(["bash", "-n", "-c", setup], check=True)
    assert "download.pytorch.org/whl/cpu" in setup and "requirements.txt" in setup and "harden.sh" in setup
    from importlib import metadata

    for dist in build_gradescope.TORCH + build_gradescope.RUNTIME:
        assert f"{dist}=={metadata.version(dist).split('+')[0]}" in pins, dist


def test_harden_makes_the_bundle_root_only(bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    root = unpack(bundle, tmp_path / "autograder", empty)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for p in [root / "source", *(root / "source").rglob("*")]:
        assert stat.S_IMODE(p.lstat().st_mode) & 0o077 == 0, p
    assert os.access(root / "source" / "run_autograder", os.X_OK)


@pytest.mark.slow
def test_unpacked_bundle_grades_solution_release_and_hostile(bundle, tmp_path):
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}
    subs = tmp_path / "subs"
    src = catalog.load_source()
    catalog.write_submission(subs, "solution", src, ck)
    catalog.write_submission(subs, "release", catalog.release_like(), {})
    graded = {}
    for name in ("solution", "release", "hostile"):
        root = tmp_path / name / "autograder"
        if name == "hostile":  # its cells know where this bundle is unpacked
            catalog.write_submission(
                subs, name, catalog.add_cells(catalog.release_like(), hostile_cells(root), "start"), {}
            )
        unpack(bundle, root, subs / name)
        res, seconds, log = run_autograder(root)
        check_schema(res, root)
        graded[name] = res
        print(
            f"{name}: {res['score']:g} / {res['extra_data']['max_score']:g} in {seconds:.1f} s "
            f"(zip {bundle.stat().st_size / 2**10:.0f} KiB)"
        )
    assert graded["solution"]["score"] == graded["solution"]["extra_data"]["max_score"] == 25
    assert graded["solution"]["extra_data"]["anomaly_features"]["spec"].endswith(
        "data/anomaly_test_features.pt"
    )
    assert graded["release"]["score"] == 0
    # the hostile submission read nothing and forged nothing: the results are the grader's own
    assert graded["hostile"]["score"] == 0 and len(graded["hostile"]["tests"]) == len(
        graded["release"]["tests"]
    )


def _interpreter_usable_by(uid: int, python: str = sys.executable) -> bool:
    """Whether an unprivileged uid can run ``python`` with torch (setuid level: it must)."""
    if os.geteuid() != 0:
        return False
    try:
        proc = subprocess.run(
            [python, "-I", "-c", "import torch"],
            user=uid,
            group=uid,
            extra_groups=[],
            capture_output=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
        )
    except OSError:  # e.g. a venv under /root
        return False
    return proc.returncode == 0


@pytest.mark.slow
def test_hostile_at_gradescopes_sandbox_level(bundle, fresh_venv, tmp_path):
    """Gradescope's containers give the ``setuid`` level: files are hidden only by permissions, which
    ``harden.sh`` sets. The hostile submission must read and forge nothing there either. It runs with
    the venv ``setup.sh`` made (in a folder every uid can traverse, as /opt is)."""
    python = str(fresh_venv[0] / "bin" / "python")
    if not _interpreter_usable_by(61000, python):
        pytest.skip("not root, or the venv setup.sh made is not reachable by an unprivileged uid")
    root = tmp_path / "autograder"
    sub = catalog.write_submission(
        tmp_path / "subs",
        "hostile",
        catalog.add_cells(catalog.release_like(), hostile_cells(root), "start"),
        {},
    )
    unpack(bundle, root, sub)
    res, _, _ = run_autograder(root, python, LAB_AUTOGRADER_NO_NAMESPACES="1")
    check_schema(res, root)
    assert res["extra_data"]["sandbox"] == "setuid" and res["score"] == 0


def _unzip(zpath: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zpath) as z:
        z.extractall(dest)
        for info in z.infolist():
            os.chmod(dest / info.filename, info.external_attr >> 16 & 0o777)
    return dest


def test_bundle_requirements_cover_every_import():
    """What the bundle's code imports is installed by its requirement files (IPython once was not)."""
    bundle = build_gradescope.files(None)
    assert build_gradescope.undeclared_imports(bundle) == {}
    nb = json.loads(bundle["points/transformer_lab.ipynb"])
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "%matplotlib inline\nimport requests_oauthlib.oauth1_session as s\n"})
    bundle["points/transformer_lab.ipynb"] = json.dumps(nb).encode()
    bundle["lib/lab_autograder/extra.py"] = b"from sklearn import svm\nfrom . import grade\n"
    assert build_gradescope.undeclared_imports(bundle) == {
        "requests_oauthlib": ["points/transformer_lab.ipynb"], "sklearn": ["lib/lab_autograder/extra.py"]}


def _system_python() -> str:
    """The distribution's python3 (as on Gradescope's Ubuntu image) if it can make a venv, else ours."""
    debian = "/usr/bin/python3"
    ok = os.path.exists(debian) and subprocess.run([debian, "-c", "import ensurepip, venv"],
                                                   capture_output=True).returncode == 0
    return debian if ok else os.path.join(sys.base_prefix, "bin", "python3")


@pytest.fixture(scope="module")
def fresh_venv(bundle, tmp_path_factory):
    """``setup.sh`` run as Gradescope runs it, into a fresh venv: the bundle's requirement files alone,
    in a folder every uid can traverse (as /opt is), so that the setuid level can run it too."""
    tmp = tmp_path_factory.mktemp("gradescope_setup")
    _unzip(bundle, tmp / "source")
    venv = Path(tempfile.mkdtemp(prefix="lab-gradescope-venv-"))
    os.chmod(venv, 0o755)
    env = dict(os.environ, LAB_VENV=str(venv), SETUP_APT="0", AUTOGRADER_ROOT=str(tmp), HARDEN_USERS="0",
               LAB_SETUP_PYTHON=_system_python())
    env.pop("PYTHONPATH", None)
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(tmp / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    print(f"setup.sh: {time.monotonic() - t0:.0f} s; {proc.stdout.strip()}")
    yield venv, proc.stdout
    shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.slow
def test_a_fresh_venv_from_the_bundle_alone_grades_as_here(bundle, fresh_venv, tmp_path):
    venv, setup_log = fresh_venv
    assert "torch from" in setup_log  # it says where torch came from (here: PyPI, the CPU index is unreachable)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import IPython, nbformat, pytorch_lightning, torchvision; "
                            "import transformer_lab"], capture_output=True, text=True)
    assert "No module named 'transformer_lab'" in probe.stderr  # only the bundle's lib/ holds the reference
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}
    src = catalog.load_source()
    bug = next(v for v in catalog.BUGS if v.part == "multihead_attention")
    subs = tmp_path / "subs"
    catalog.write_submission(subs, "solution", src, ck)
    catalog.write_submission(subs, "release", catalog.release_like(), {})
    catalog.write_submission(subs, "bug", catalog.apply_edits(src, bug.edits), ck)
    scores = {}
    ways = [("fresh", python, {}), ("here", sys.executable, {})]
    if _interpreter_usable_by(61000, python):  # Gradescope's own level: no namespaces (a chroot, no CAP_SYS_ADMIN)
        ways.append(("fresh, setuid level", python, {"LAB_AUTOGRADER_NO_NAMESPACES": "1"}))
    for name in ("solution", "release", "bug"):
        for where, interpreter, env in ways:
            root = unpack(bundle, tmp_path / f"{name}-{where.replace(' ', '_')}" / "autograder", subs / name)
            res, seconds, log = run_autograder(root, interpreter, **env)
            check_schema(res, root)
            scores[name, where] = res["score"]
            print(f"{name} ({where}, sandbox {res['extra_data']['sandbox']}): {res['score']:g} in {seconds:.1f} s")
            assert "ModuleNotFoundError" not in res["output"], res["output"]
    for name, expected in (("solution", 25), ("release", 0)):
        assert {scores[name, w] for w, _, _ in ways} == {expected}, scores
    assert len({scores["bug", w] for w, _, _ in ways}) == 1 and scores["bug", "here"] < 25, scores


#: a job that leaves what it can: a file in every folder any uid may write, System V IPC objects
PLANT_CELL = (
    "import ctypes, os, stat\n"
    "_planted = []\n"
    "for _top, _dirs, _files in os.walk('/'):\n"
    "    _dirs[:] = [d for d in _dirs if os.path.join(_top, d) not in ('/proc', '/sys')]\n"
    "    try:\n"
    "        if os.stat(_top).st_mode & stat.S_IWOTH:\n"
    "            open(os.path.join(_top, 'planted_by_a_job'), 'w').write('left behind')\n"
    "            os.makedirs(os.path.join(_top, 'planted_dir', 'deeper'), exist_ok=True)\n"
    "            _planted.append(_top)\n"
    "    except OSError:\n"
    "        pass\n"
    "_libc = ctypes.CDLL(None)\n"
    "_ipc = [_libc.shmget(0, 4096, 0o1000 | 0o666), _libc.semget(0, 1, 0o1000 | 0o666), _libc.msgget(0, 0o1000 | 0o666)]\n"
    "raise RuntimeError(f'PLANTED in {len(_planted)} folders, IPC ids {_ipc}: {_planted}')  # shown in the feedback\n"
)


def _leftovers_of_job_uids() -> list[str]:
    from lab_autograder.leftovers import ipc_objects, writable_by_all
    from lab_autograder.sandbox import MAX_SLOTS, UID_BASE

    writable_by_all.cache_clear()
    found = []
    for folder in writable_by_all():
        for e in os.scandir(folder):
            if UID_BASE <= e.stat(follow_symlinks=False).st_uid < UID_BASE + MAX_SLOTS:
                found.append(e.path)
    return found + [f"{k} {i}" for u in range(UID_BASE, UID_BASE + MAX_SLOTS) for k, i in ipc_objects(u)]


@pytest.mark.slow
def test_nothing_a_job_leaves_outlives_it_at_the_setuid_level(bundle, fresh_venv, tmp_path):
    python = str(fresh_venv[0] / "bin" / "python")
    if not _interpreter_usable_by(61000, python):
        pytest.skip("not root, or the venv setup.sh made is not reachable by an unprivileged uid")
    before = _leftovers_of_job_uids()
    root = tmp_path / "autograder"
    sub = catalog.write_submission(tmp_path / "subs", "planter",
                                   catalog.add_cells(catalog.release_like(), [PLANT_CELL], "start"), {})
    unpack(bundle, root, sub)
    res, _, log = run_autograder(root, python, LAB_AUTOGRADER_NO_NAMESPACES="1")
    assert res["extra_data"]["sandbox"] == "setuid" and res["score"] == 0
    planted = re.search(r"PLANTED in (\d+) folders, IPC ids \[(-?\d+), (-?\d+), (-?\d+)\]", res["output"])
    assert planted and int(planted.group(1)) >= 3 and min(int(planted.group(i)) for i in (2, 3, 4)) >= 0, res["output"]
    left = [p for p in _leftovers_of_job_uids() if p not in before]
    print(f"left after a hostile setuid job: {left or 'nothing'}")
    assert left == []
