"""The public API: plain functions with real signatures, one options object behind every front."""

import importlib
import inspect
from pathlib import Path

import pytest

import l2reg
from l2reg.options import DEFAULT_LMBDA, ExplainOptions, SweepOptions, TrainOptions


@pytest.mark.parametrize("name", ["train", "sweep", "explain", "convert"])
def test_public_functions_have_real_signatures(name):
    for module in ("fronts.training", "fronts.sweeping", "fronts.explaining", "fronts.conventions"):
        importlib.import_module(f"l2reg.{module}")  # importing every implementation module changes no public name
    fn = getattr(l2reg, name)
    assert inspect.isfunction(fn) and fn.__doc__
    params = inspect.signature(fn).parameters
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values())
    if name != "convert":
        assert "lmbda" in params and "lmbdas" not in params and params["lmbda"].default is None


def test_every_front_takes_the_options_of_the_options_object():
    """train/sweep/explain list the options they take by the options object's names (nothing else re-lists them)."""
    names = set(TrainOptions.names())
    train = set(inspect.signature(l2reg.train).parameters)
    assert names <= train  # every training option
    assert set(inspect.signature(l2reg.sweep).parameters) & set(SweepOptions.names()) >= {"lmbda", "folds", "select"}
    assert {"record_every", "track", "snapshots"} <= set(inspect.signature(l2reg.explain).parameters)
    assert set(ExplainOptions.names()) > names


def test_the_default_lmbda_is_the_same_everywhere():
    from l2reg.sklearn import L2MLPClassifier, L2MLPClassifierCV

    assert TrainOptions().checked().lmbda == (DEFAULT_LMBDA,) == ExplainOptions().checked().lmbda
    assert TrainOptions(optimizer="adamw").checked().lmbda == (0.0,)
    assert L2MLPClassifier().get_params()["lmbda"] is None  # None: DEFAULT_LMBDA at fit, as above
    assert "lmbda" in L2MLPClassifierCV().get_params()


def test_options_round_trip_through_the_json_config():
    opts = TrainOptions(lmbda=[0, 1], eta=0.3, seed=[1, 2], optimizer="momentum", momentum=0.5).checked()
    assert TrainOptions.from_config(opts.to_config()) == opts


def test_sweep_and_explain_run_from_python():
    r = l2reg.sweep(dataset="digits", lmbda=[0, 1], folds=3, epochs=5)
    assert type(r).__name__ == "SweepResult" and r.chosen_lmbda in (0.0, 1.0) and len(r.rows) == 2
    e = l2reg.explain(dataset="digits", lmbda=1.0, epochs=2, train_size=200)
    assert type(e).__name__ == "ExplainResult" and e.lmbdas == [0.0, 1.0]


def test_the_public_face_is_plain_and_visible_to_static_tools():
    """No module shares a public function's name, the package is an ordinary module (no class swap), and every
    public name is imported under TYPE_CHECKING, where IDEs and type checkers read it."""
    import ast
    import pkgutil
    import types

    assert type(l2reg) is types.ModuleType
    submodules = {m.name for m in pkgutil.iter_modules(l2reg.__path__)}
    assert not submodules & set(l2reg.__all__)
    tree = ast.parse(Path(l2reg.__file__).read_text())
    checked = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {alias.asname or alias.name for node in checked.body for alias in node.names}
    assert seen | {"ConfigError", "DataError", "L2RegError", "__version__"} == set(l2reg.__all__)
    for name in l2reg.__all__:
        assert getattr(l2reg, name) is not None
    assert set(dir(l2reg)) >= set(l2reg.__all__)
