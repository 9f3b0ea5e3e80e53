"""``l2reg jax audit`` and ``l2reg jax sweep``: the same flow, files and one-line errors as ``l2reg torch sweep``."""

import json
from pathlib import Path

import pytest

pytest.importorskip("flax")

from l2reg.cli import main  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "jax_models.py"


def test_jax_sweep_chooses_lmbda_and_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["jax", "sweep", f"{EXAMPLES}:linen_mlp", "--data", "digits", "--lmbda", "0,1", "--epochs", "1",
            "--folds", "2", "--strategy", "vmap", "--out", str(out), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["config"]["engine"] == "jax" and doc["config"]["library"] == "linen"
    assert doc["chosen_lmbda"] in (0.0, 1.0) and doc["summary"] and (out / "report.html").is_file()
    assert doc["config"]["strategy_chosen"]["chosen"] == "vmap"


def test_jax_sweep_under_adamw_chooses_the_weight_decay(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["jax", "sweep", f"{EXAMPLES}:linen_mlp", "--data", "digits", "--optimizer", "adamw", "--weight-decay",
            "0,0.1", "--eta", "0.01", "--epochs", "1", "--folds", "2", "--strategy", "vmap", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["config"]["decay"] == "weight_decay" and doc["config"]["weight_decay"] == [0.0, 0.1]
    assert doc["chosen_weight_decay"] in (0.0, 0.1) and doc["config"]["n"] == 1077  # l2reg sweep's digits rows
    text = " ".join(capsys.readouterr().out.split())
    assert "l2reg jax sweep:" in text and "linen_mlp on digits" in text and "never to choose wd" in text


def test_jax_audit_lists_every_leaf(capsys):
    assert main(["jax", "audit", f"{EXAMPLES}:nnx_cnn", "--compare", "ndim"]) == 0
    text = capsys.readouterr().out
    assert "conv1.kernel" in text and "decay groups under policy 'l2reg'" in text and "ndim" in text


@pytest.mark.parametrize("argv, says", [
    (["--strategy", "loop"], "strategy must be one of auto, vmap, map, chunked; got 'loop'."),
    (["--policy", "timm"], "timm"),
    (["--lmbda", "-1"], "lmbda"),
    (["--optimizer", "adamw", "--lmbda", "0,1"], "--weight-decay"),
    (["--weight-decay", "0,0.1"], "--optimizer adamw"),
    (["--penalty", "l1"], "(see 'l2reg jax sweep --help')"),
])
def test_bad_options_are_one_line_and_exit_2(argv, says, tmp_path, capsys):
    code = main(["jax", "sweep", f"{EXAMPLES}:linen_mlp", "--data", "digits", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "x").exists()


def test_a_factory_that_is_not_there_is_one_line(capsys):
    assert main(["jax", "audit", f"{EXAMPLES}:nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no attribute 'nothing'" in err
