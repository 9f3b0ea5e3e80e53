"""Every command and code block of the README runs, and what the README says of it holds.

The commands are read from the README itself. Each must match one entry of
``CASES`` (or of ``ELSEWHERE``, the few that another test or ``.ci/run``
runs), so a new README example without a test fails here. A case may append
options that shrink the run (the last occurrence of an option wins); where
the README states a number, the case runs at the README's own size.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from l2reg.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MNIST = ROOT.parent / "shared" / "data" / "mnist"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def readme_commands() -> list[str]:
    """Every command line of the README's bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                out.append(" ".join(line.split()))
    return out


def _folder(tmp: Path) -> Path:
    runs = sorted((tmp / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def _json(tmp: Path, name: str) -> dict:
    return json.loads((_folder(tmp) / name).read_text())


# ---------------------------------------------------------------- the claims


def main_job(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["chosen_lmbda"] == 1.0 and doc["select"] == "1se" and doc["min_lmbda"] == 0.49
    assert doc["summary"] in " ".join(README.split())  # the sentence the README quotes, word for word
    assert doc["answer"] in " ".join(README.split())  # and the answer, with the explain command to run
    assert "l2reg explain --dataset digits --train-size 300" in doc["answer"] and "--init large" in doc["answer"]
    rows = {r["lmbda"]: r for r in doc["rows"]}
    assert round(100 * rows[0.0]["test_accuracy"], 2) == 95.83 and round(100 * rows[1.0]["gap"], 2) == 0.67


def every_lmbda_at_once(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert [r["lmbda"] for r in runs] == [0.0, 0.1, 1.0, 5.0] and {r["seed"] for r in runs} == {0}


def mean_sd_over_seeds(tmp, out):
    assert len(_json(tmp, "metrics.json")["runs"]) == 6 and "±" in out and "seeds 0,1,2" in out


def mnist_train(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert runs[0]["evaluation_accuracy"][-1] > 0.9  # test set, after one epoch on 50,000 images


def sweep_min(tmp, out):
    rows = _json(tmp, "sweep.json")["rows"]
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["cv_accuracy_mean"] == max(r["cv_accuracy_mean"] for r in rows)


def mnist_path_lifts_accuracy(tmp, out):
    doc = _json(tmp, "sweep.json")
    rows = {r["lmbda"]: r for r in doc["rows"]}
    base, chosen = 100 * rows[0.0]["test_accuracy"], 100 * rows[doc["chosen_lmbda"]]["test_accuracy"]
    assert 79 <= base <= 85 and 86 <= chosen <= 91 and chosen - base >= 3, (base, chosen)  # "about 82% to 88%"


def eta_grid_heat_map(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert len(doc["rows"]) == 12 and doc["etas"] == [0.1, 0.5, 1.0]
    assert 'id="sweep-heatmap"' in (_folder(tmp) / "report.html").read_text()


def csv_holds_out_a_test_part(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["config"]["n_test"] > 0 and "Held out 20% of X" in out


def explains(tmp, out):
    doc = _json(tmp, "explain.json")
    model = doc["models"][1]
    assert model["lmbda"] == 0.5 and model["answer"] and 0 < model["decay_factor_per_step"] < 1
    assert "is L2 regularization an addition?" in out


def converts(tmp, out):
    assert "τ" in out or "tau_iter" in out


def transfers(tmp, out):
    assert "Keeping τ_epoch" in out and "batch size 100" in out


def audits(tmp, out):
    assert "embed.weight (= head.weight)" in out and "mingpt" in out and "decided differently" in out


def torch_sweeps(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["config"]["engine"] == "torch" and doc["config"]["models_cv"] == 4 * 2


def torch_bn_sweeps(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["config"]["models_cv"] == 4 * 2 and doc["chosen_lmbda"] in (0, 3, 30, 300)
    params = np.load(_folder(tmp) / "params.npz")
    assert doc["config"]["strategy_taken"]["cv"]["chosen"] in ("vmap", "chunked", "loop")
    assert "Trained" in out and (_folder(tmp) / "report.html").is_file() and len(params.files)


def torch_gru_sweeps(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["chosen_lmbda"] in (0, 1, 10, 100) and doc["config"]["models_refit"] == 4
    taken = doc["config"]["strategy_taken"]
    assert all(stage["eval_members_per_call"] == 1 for stage in taken.values())  # no vmap rule for aten::gru.input
    assert "Trained" in out and "Trained" in (_folder(tmp) / "report.html").read_text()


def torch_adamw_sweeps(tmp, out):
    doc = _json(tmp, "sweep.json")
    assert doc["config"]["decay"] == "weight_decay" and doc["config"]["weight_decay"] == [0.0, 0.01, 0.1, 1.0]
    assert doc["chosen_weight_decay"] in (0.0, 0.01, 0.1, 1.0) and doc["config"]["n"] == 1077
    assert "never to choose wd" in out and "Not under AdamW" in out


def prox_zeros(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert runs[0]["zero_weight_fraction"][-1] == 0 and runs[2]["zero_weight_fraction"][-1] > 0.1


def trains(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert all(np.isfinite(r["training_cost"][-1]) for r in runs)


def adamw_learns(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert [r["weight_decay"] for r in runs] == [1e-4, 1e-3]
    assert all(r["evaluation_accuracy"][-1] > 0.9 for r in runs)  # far from chance (10%)


def stops_early(tmp, out):
    runs = _json(tmp, "metrics.json")["runs"]
    assert all("stopped_epoch" in r and "best_epoch" in r for r in runs)


def lbfgs(tmp, out):
    assert all("iterations" in r for r in _json(tmp, "metrics.json")["runs"])


SMALL = ["--epochs", "3", "--train-size", "300"]
#: README command (exact, as read) -> (options appended, claim, needs MNIST)
CASES = {
    "python3 -m pip install -e \".[dev]\" && l2reg sweep --train-size 300 --epochs 60 --init large --select 1se":
        ([], main_job, False),
    "l2reg train --dataset digits --lmbda 0,0.1,1,5": (SMALL, every_lmbda_at_once, False),
    "l2reg train --seeds 0,1,2 --lmbda 0,1": (SMALL, mean_sd_over_seeds, False),
    "l2reg train --dataset mnist --data-dir ../shared/data --sizes 784,30,10 --epochs 30 --batch-size 10 --eta 0.5 "
    "--lmbda 5.0 --eval test": (["--epochs", "1"], mnist_train, True),
    "l2reg sweep --lmbda 0,0.1,1,10 --folds 5 --select min": (SMALL, sweep_min, False),
    "l2reg sweep --lmbda-grid 0.01:30:15 --dataset mnist --data-dir ../shared/data --train-size 1000 --epochs 100 "
    "--init large": ([], mnist_path_lifts_accuracy, True),
    "l2reg sweep --eta 0.1,0.5,1 --lmbda 0,0.3,1,3": (SMALL + ["--folds", "3"], eta_grid_heat_map, False),
    "l2reg sweep --dataset my.csv": (["--epochs", "2", "--folds", "3"], csv_holds_out_a_test_part, False),
    "l2reg explain --lmbda 0.5 --epochs 30": ([], explains, False),
    "l2reg convert 5 --from nielsen --n 50000 --batch-size 10 --eta 0.5 --epochs 30": ([], converts, False),
    "l2reg convert 1e-4 --from coupled --n 50000 --json": ([], converts, False),
    "l2reg convert 5 --from nielsen --n 50000 --batch-size 10 --eta 0.5 --to-batch-size 100": ([], transfers, False),
    "l2reg torch audit examples/models.py:transformer_block --compare timm,hf,mingpt,nanogpt": ([], audits, False),
    "l2reg torch sweep examples/models.py:digits_cnn --data digits --lmbda 0,3,30,300 --optimizer momentum "
    "--eta 0.05 --epochs 10": (["--epochs", "1", "--folds", "2"], torch_sweeps, False),
    "l2reg torch sweep examples/models.py:digits_bn_cnn --data digits --lmbda 0,3,30,300 --optimizer momentum "
    "--eta 0.05 --epochs 10": (["--epochs", "1", "--folds", "2"], torch_bn_sweeps, False),
    "l2reg torch sweep examples/models.py:digits_gru --data digits --lmbda 0,1,10,100 --optimizer adam "
    "--eta 0.01 --epochs 10": (["--epochs", "1", "--folds", "2"], torch_gru_sweeps, False),
    "l2reg torch sweep examples/models.py:digits_cnn --data digits --optimizer adamw --weight-decay 0,0.01,0.1,1 "
    "--eta 0.003 --epochs 10": (["--epochs", "1", "--folds", "2"], torch_adamw_sweeps, False),
    "l2reg train --penalty l1 --l1-update prox --lmbda 0,1,3": (["--epochs", "3"], prox_zeros, False),
    "l2reg train --penalty elastic-net --l1-ratio 0.3": (SMALL, trains, False),
    "l2reg train --lmbda-per-layer 5,0.5": (SMALL, trains, False),
    "l2reg train --optimizer momentum --momentum 0.5,0.9 --eta 0.05,0.1 --lmbda 0,1": (SMALL, trains, False),
    "l2reg train --optimizer adam --eta 1e-3 --lmbda 5": (SMALL, trains, False),
    "l2reg train --optimizer adamw --eta 3e-3 --weight-decay 1e-4,1e-3 --decay-scaling schedule --schedule cosine":
        ([], adamw_learns, False),
    "l2reg train --schedule step --step-epochs 10 --warmup-epochs 2 --early-stopping --patience 10":
        (["--epochs", "12", "--train-size", "300"], stops_early, False),
    "l2reg train --optimizer lbfgs --lmbda 0.1,1 --epochs 200": (["--epochs", "20", "--train-size", "300"], lbfgs, False),
}
#: Commands another test runs: README command -> where.
ELSEWHERE = {
    "python3 -m pip install -e \".[dev,oracles,torch,ray,hf,lightning,flax,equinox]\" && python3 -m pip install --no-deps "
    "timm==1.0.31 && python3 -m pytest -n 2": ".ci/run (the test suite itself)",
    "l2reg explain --run runs/train-TIME": "test_explain_run_of_a_train_folder below",
    "l2reg sweep --resume runs/sweep-TIME": "tests/test_interrupts.py and tests/test_sweep.py (resume)",
    "l2reg torch sweep --resume runs/torch-sweep-TIME": "tests/test_model_resume.py (Ctrl-C at each moment, resumed)",
    "python3 -m pip install -e \".[ray]\"": ".ci/run (the ray extra)",
    "ray start --head --port 6379": "tests/test_distributed.py (a real `ray start --head` cluster)",
    "ray start --address=HEAD_IP:6379": "Ray's own command (a second machine; none in CI)",
    "l2reg sweep --backend ray --address HEAD_IP:6379 --dataset mnist --data-dir ../shared/data --train-size 1000":
        "tests/test_distributed.py (the CLI against a real local cluster with --address)",
}


def test_every_readme_command_has_a_case():
    found = readme_commands()
    missing = [c for c in found if c not in CASES and c not in ELSEWHERE]
    assert not missing, f"README commands without a test: {missing}"
    assert not [c for c in CASES if c not in found], "cases for commands the README no longer has"


def _digits_csv(path: Path) -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    header = ",".join(f"p{i}" for i in range(64)) + ",label"
    rows = [",".join(f"{v / 16:g}" for v in x) + f",{t}" for x, t in zip(X[:400], y[:400])]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("command", list(CASES))
def test_readme_command_runs_and_its_claim_holds(command, tmp_path, monkeypatch, capsys):
    extra, claim, needs_mnist = CASES[command]
    if needs_mnist and not MNIST.is_dir():
        pytest.skip(f"needs the MNIST files in {MNIST}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path.parent / "shared").mkdir(exist_ok=True)
    if MNIST.is_dir() and not (tmp_path.parent / "shared" / "data").exists():
        (tmp_path.parent / "shared" / "data").symlink_to(MNIST.parent)
    _digits_csv(tmp_path / "my.csv")
    argv = command.split("&& ")[-1].split()[1:] + extra
    if argv[0] == "torch":
        pytest.importorskip("torch")
    assert main(argv) == 0
    captured = capsys.readouterr()
    claim(tmp_path, captured.out + captured.err)


#: What a README Python block imports -> the libraries it needs (the first that matches decides).
PYTHON_NEEDS = {"l2reg.torch.hf": ("torch", "transformers", "accelerate"),
                "l2reg.torch.lightning": ("torch", "lightning"), "l2reg.torch": ("torch",), "l2reg.jax": ("flax",)}


def _python_claims(scope: dict) -> None:
    """What the README says of the names its blocks define."""
    if "path" in scope:
        assert scope["path"].chosen_lmbda in [0, 0.3, 1, 3]
        doc = json.loads(Path("runs/my-sweep/sweep.json").read_text())  # l2reg.save's folder
        assert doc["chosen_lmbda"] == scope["path"].chosen_lmbda and doc["summary"]
    if "clf" in scope:
        assert scope["clf"].lmbda_ in [0, 0.1, 1, 10]
    if "jax_path" in scope:
        assert scope["jax_path"].config["engine"] == "jax" and scope["jax_path"].chosen_lmbda in [0, 1, 10]
        assert type(scope["model"]).__name__ == "MLP"
    if "monitor" in scope:
        assert len(scope["groups"]) == 2 and scope["groups"][1]["weight_decay"] == 0.0
    trainer = scope.get("trainer")
    if trainer is not None and type(trainer).__module__.startswith("transformers"):  # the scalars, the files
        assert trainer.state.global_step == 8 and any("decay/d_over_g" in h for h in trainer.state.log_history)
        assert (Path("runs/hf") / "decay_monitor.html").is_file() and (Path("runs/hf") / "decay_monitor.json").is_file()
    elif trainer is not None:  # lightning.Trainer
        assert trainer.global_step == 8 and "decay/tau_epoch" in trainer.logged_metrics
        assert (Path(trainer.log_dir) / "decay_monitor.html").is_file()


@pytest.mark.parametrize("block", _blocks("python"), ids=lambda b: b.splitlines()[-1][:40])
def test_readme_python_blocks_run(block, tmp_path, monkeypatch):
    """The README's Python: the API, the scikit-learn estimators, the PyTorch helpers, the trainers' callbacks."""
    monkeypatch.chdir(tmp_path)
    for marker, libraries in PYTHON_NEEDS.items():
        if marker in block:
            for library in libraries:
                pytest.importorskip(library)
            break
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102  (the README's own code)
    _python_claims(scope)


def test_explain_run_of_a_train_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "2", "--lmbda", "0,1", "--out", "runs/train-1", "-q"]) == 0
    assert main(["explain", "--run", "runs/train-1", "--out", "ex", "-q"]) == 0
    doc = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert doc["reproduced"]["max_abs_diff"] < 1e-5  # the re-run is the run


# README's "Where the formula lives": `name` (lines a–b) must be that function's lines,
# and each "(line N)" must point at the code it names, so the pointers cannot drift.
LINE_POINTERS = [  # (file, text on the README's line, what that line of the file holds)
    ("src/l2reg/core/update.py", "`penalties.coupled_penalty` adds", "penalties.coupled_penalty("),
    ("src/l2reg/core/update.py", "`optax.sgd(η)` (line", "optax.sgd("),
    ("src/l2reg/core/update.py", "`make_hyper` (line", 'hyper["lmbda_over_n"]'),
]


def test_readme_function_line_ranges_match_the_code():
    import ast

    found = re.findall(r"\[`(src/l2reg/[\w/]+\.py)`\]\([^)]*\) `([\w.]+)` \(lines (\d+)–(\d+)\)", README)
    assert len(found) >= 2
    for path, name, a, b in found:
        spans = [(n.lineno, n.end_lineno) for n in ast.walk(ast.parse((ROOT / path).read_text()))
                 if isinstance(n, ast.FunctionDef) and n.name == name.split(".")[-1]]
        assert (int(a), int(b)) in spans, (path, name, a, b, spans)


@pytest.mark.parametrize("path,readme_text,code", LINE_POINTERS)
def test_readme_line_pointers_match_the_code(path, readme_text, code):
    at = README.index(readme_text)
    line = int(re.search(r"\(line (\d+)\)", README[at:at + 200]).group(1))
    source = (ROOT / path).read_text().splitlines()
    assert code in source[line - 1], (path, line, source[line - 1])
