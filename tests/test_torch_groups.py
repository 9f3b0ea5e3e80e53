"""Decay policies against the real libraries' own code, the audit, and the model factory.

Oracles:

* timm: its own ``param_groups_weight_decay`` (timm 1.0.31, ``pip install --no-deps
  timm``). timm's package imports torchvision, and PyPI's torchvision does not
  import beside torch 2.13.0 here, so the test loads ``timm/optim/_param_groups.py``
  from the installed wheel with importlib, with its one ``from timm.models import
  group_parameters`` stubbed (the function under test does not use it).
* Hugging Face: ``transformers.Trainer.get_decay_parameter_names`` itself
  (transformers 5.24.0 with ``--no-deps`` and its light pure-Python imports).
* minGPT and nanoGPT are not packages: their rules as their sources state them,
  transcribed below with the commit.

Each library is skipped when absent.
"""

import importlib.util
import subprocess
import sys
import textwrap
import types

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from l2reg.errors import ConfigError, ConfigTypeError, L2RegError  # noqa: E402
from l2reg.torch import POLICIES, audit, audit_tables, classify, decay_groups, load_factory  # noqa: E402

# ---------------------------------------------------------------- models written for the tests


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):
        return x * self.gamma


class TinyViT(nn.Module):
    """BatchNorm, LayerNorm, Embedding, biases, 1-D and 3-D free parameters, and a no_weight_decay() list."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
        self.tok = nn.Embedding(11, 8)
        self.blocks = nn.ModuleList([nn.ModuleDict({"norm": nn.LayerNorm(8), "fc": nn.Linear(8, 8), "ls": LayerScale(8)})
                                     for _ in range(2)])
        self.head = nn.Linear(8, 4)
        self.temperature = nn.Parameter(torch.tensor(1.0))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token", "blocks.*.ls.gamma"}


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Block(nn.Module):
    """A GPT block (minGPT's layout) with a tied head; all parameters are Linear/LayerNorm/Embedding."""

    def __init__(self, tied=False):
        super().__init__()
        self.wte = nn.Embedding(13, 8)
        self.wpe = nn.Embedding(6, 8)
        self.ln_1 = nn.LayerNorm(8)
        self.attn = nn.ModuleDict({"c_attn": nn.Linear(8, 24), "c_proj": nn.Linear(8, 8)})
        self.ln_2 = nn.LayerNorm(8)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(8, 32), "c_proj": nn.Linear(32, 8)})
        self.lm_head = nn.Linear(8, 13, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight


class HFNames(nn.Module):
    """Parameters whose names alone decide under Hugging Face's rule."""

    def __init__(self):
        super().__init__()
        self.norm = RMSNorm(4)
        self.q_norm = RMSNorm(4)
        self.final_layernorm = RMSNorm(4)
        self.dense = nn.Linear(4, 4)
        self.attn_bias = nn.Parameter(torch.zeros(4, 4))
        self.enorm_proj = nn.Linear(4, 4, bias=False)  # 'norm' inside a word: decayed
        self.inner = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))


MODELS = {"tiny_vit": TinyViT, "block": Block, "tied_block": lambda: Block(tied=True), "hf_names": HFNames}


def _decayed(groups) -> set:
    return {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}


def _ours(model, policy) -> set:
    return _decayed(decay_groups(model, 0.1, policy))


# ---------------------------------------------------------------- oracles


@pytest.fixture(scope="module")
def timm_param_groups(tmp_path_factory):
    spec = importlib.util.find_spec("timm")
    if spec is None:
        pytest.skip("timm is not installed (pip install --no-deps timm)")
    path = spec.submodule_search_locations[0] + "/optim/_param_groups.py"
    saved = {k: sys.modules.get(k) for k in ("timm", "timm.models")}
    sys.modules["timm"] = types.ModuleType("timm")  # timm/__init__ imports torchvision
    sys.modules["timm.models"] = types.SimpleNamespace(group_parameters=None)
    try:
        loader = importlib.util.spec_from_file_location("timm_param_groups_under_test", path)
        mod = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(mod)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod.param_groups_weight_decay


def mingpt_decay(model, *, drop=()) -> set:
    """minGPT's configure_optimizers (github.com/karpathy/minGPT, mingpt/model.py, commit 37baab7), as stated there.

    ``drop``: names removed from the decay set before the groups are built, as
    nanoGPT's version of this code did for its tied head (commit 7c82885:
    ``decay.remove('lm_head.weight')``, "named_parameters() ... will only return
    the first occurrence"); without it minGPT fails on a tied model (KeyError).
    """
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters():
            fpn = f"{mn}.{pn}" if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    decay -= set(drop)
    param_dict = {pn: p for pn, p in model.named_parameters()}
    assert len(decay & no_decay) == 0
    assert len(param_dict.keys() - (decay | no_decay)) == 0
    return {id(param_dict[pn]) for pn in sorted(decay)}


def nanogpt_decay(model) -> set:
    """nanoGPT's configure_optimizers (github.com/karpathy/nanoGPT, model.py, commit 3adf61e): dim >= 2 decays."""
    return {id(p) for _, p in model.named_parameters() if p.requires_grad and p.dim() >= 2}


# ---------------------------------------------------------------- each policy equals its library


@pytest.mark.parametrize("model_name", ["tiny_vit", "block", "tied_block", "hf_names"])
def test_timm_policy_is_timms_own_param_groups(timm_param_groups, model_name):
    model = MODELS[model_name]()
    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    theirs = _decayed(timm_param_groups(model, weight_decay=0.1, no_weight_decay_list=nwd))
    assert _ours(model, "timm") == theirs
    no_decay_theirs = {id(p) for g in timm_param_groups(model, 0.1, no_weight_decay_list=nwd)
                       if g["weight_decay"] == 0 for p in g["params"]}
    assert {id(p) for g in decay_groups(model, 0.1, "timm") if g["weight_decay"] == 0
            for p in g["params"]} == no_decay_theirs


@pytest.mark.parametrize("model_name", ["tiny_vit", "block", "tied_block", "hf_names"])
def test_hf_policy_is_transformers_trainer_rule(model_name):
    transformers = pytest.importorskip("transformers")
    model = MODELS[model_name]()
    names = set(transformers.Trainer.get_decay_parameter_names(None, model))
    # Trainer.create_optimizer: decay = named_parameters() whose name is listed, requires_grad only.
    theirs = {id(p) for n, p in model.named_parameters() if n in names and p.requires_grad}
    assert _ours(model, "hf") == theirs


def test_mingpt_policy_is_mingpts_rule():
    model = Block()
    assert _ours(model, "mingpt") == mingpt_decay(model)


def test_mingpt_policy_on_a_tied_head_keeps_the_first_name_as_nanogpt_did():
    model = Block(tied=True)
    with pytest.raises(KeyError):
        mingpt_decay(model)  # minGPT as written cannot build its groups here
    assert _ours(model, "mingpt") == mingpt_decay(model, drop=["lm_head.weight"])


@pytest.mark.parametrize("model_name", ["tiny_vit", "block", "tied_block", "hf_names"])
def test_nanogpt_policy_is_nanogpts_rule(model_name):
    model = MODELS[model_name]()
    assert _ours(model, "nanogpt") == nanogpt_decay(model)


def test_policies_disagree_where_the_recipes_do():
    """The point of having them: the same model, different decayed sets (numbers from the rules above)."""
    vit = TinyViT()
    by_policy = {p: {d.name for d in classify(vit, p) if d.decay} for p in ("l2reg", "timm", "nanogpt")}
    assert by_policy["timm"] == {"stem.weight", "tok.weight", "blocks.0.fc.weight", "blocks.1.fc.weight", "head.weight"}
    assert by_policy["nanogpt"] == by_policy["timm"] | {"cls_token", "pos_embed"}
    assert by_policy["l2reg"] == by_policy["timm"]
    block = Block()
    assert {d.name for d in classify(block, "mingpt") if d.decay} == {d.name for d in classify(block, "hf") if d.decay} - {
        "wte.weight", "wpe.weight"}


# ---------------------------------------------------------------- the l2reg default, as its docstring states


@pytest.mark.parametrize("name,decay,rule", [
    ("stem.weight", True, "weight of Conv2d"),
    ("bn.weight", False, "norm layer BatchNorm2d"),
    ("bn.bias", False, "norm layer BatchNorm2d"),
    ("cls_token", False, "no_weight_decay() lists 'cls_token'"),
    ("pos_embed", False, "no_weight_decay() lists 'pos_embed'"),
    ("tok.weight", True, "weight of Embedding"),
    ("blocks.0.norm.weight", False, "norm layer LayerNorm"),
    ("blocks.0.fc.bias", False, "bias"),
    ("blocks.1.ls.gamma", False, "lists 'blocks.*.ls.gamma'"),
    ("head.weight", True, "weight of Linear"),
    ("temperature", False, "ndim = 0"),
    ("frozen.weight", None, "frozen"),
])
def test_l2reg_default_decays_weights_only(name, decay, rule):
    d = {d.name: d for d in classify(TinyViT())}[name]
    assert d.decay is decay and rule in d.rule


def test_l2reg_default_spots_norm_classes_by_name():
    d = {d.name: d for d in classify(HFNames())}
    assert [d[n].decay for n in ("norm.weight", "q_norm.weight", "final_layernorm.weight", "dense.weight")] == [
        False, False, False, True]


# ---------------------------------------------------------------- groups: every parameter exactly once


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "mingpt"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_trainable_parameter_is_in_exactly_one_group(policy, model_name):
    model = MODELS[model_name]()
    groups = decay_groups(model, 0.05, policy)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    assert [len(g["param_names"]) for g in groups] == [len(g["params"]) for g in groups]
    assert max(g["weight_decay"] for g in groups) in (0.05, 0.0)
    torch.optim.AdamW(groups, lr=1e-3)  # accepted as is


def test_tied_parameter_appears_once_and_says_who_decided():
    rows = {d.name: d for d in classify(Block(tied=True), "mingpt")}
    assert "lm_head.weight" not in rows
    wte = rows["wte.weight"]
    assert wte.aliases == ("lm_head.weight",) and wte.decay is False
    assert "shared with 'lm_head.weight', which alone would be decayed (weight of nn.Linear)" in wte.rule


def test_callable_policy_and_its_errors():
    model = Block()
    groups = decay_groups(model, 0.1, lambda name, p, module: isinstance(module, nn.Linear) and name.endswith("weight"))
    assert _decayed(groups) == {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    with pytest.raises(ConfigTypeError, match="must return True or False"):
        decay_groups(model, 0.1, lambda *a: "yes")


@pytest.mark.parametrize("args,error,message", [
    ((Block(), 0.1, "keras"), ConfigError, "policy must be one of l2reg, timm, hf, mingpt, nanogpt or a callable"),
    ((Block(), -1.0), ConfigError, "weight_decay must be a finite number >= 0; got -1.0."),
    ((Block(), float("nan")), ConfigError, "weight_decay must be a finite number >= 0"),
    (("model", 0.1), ConfigTypeError, "model must be a torch.nn.Module; got str."),
    ((TinyViT(), 0.1, "mingpt"), ConfigError, "policy 'mingpt' cannot classify 'cls_token'"),
    ((nn.Linear(2, 2).requires_grad_(False), 0.1), ConfigError, "no trainable parameters"),
])
def test_bad_input_is_one_line(args, error, message):
    with pytest.raises(error) as info:
        decay_groups(*args)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- audit


def test_audit_rows_totals_and_differences():
    model = TinyViT()
    result = audit(model, "timm", compare=["hf", "nanogpt"])
    assert [r.name for r in result.rows] == [n for n, _ in model.named_parameters()]
    totals = result.totals
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert totals["decayed"]["params"] + totals["not_decayed"]["params"] == trainable
    assert totals["frozen"] == {"tensors": 2, "params": 6}
    assert totals["decayed"]["params"] == sum(p.numel() for p in (model.stem.weight, model.tok.weight, model.head.weight,
                                                                  model.blocks[0].fc.weight, model.blocks[1].fc.weight))
    nano = {d["name"] for d in result.differences("nanogpt")}
    assert nano == {"cls_token", "pos_embed"}
    hf = {d["name"]: d for d in result.differences("hf")}
    assert set(hf) == {"bn.weight", "blocks.0.ls.gamma", "blocks.1.ls.gamma", "cls_token", "pos_embed", "temperature"}
    assert hf["bn.weight"]["timm"] == "no decay" and hf["bn.weight"]["hf"] == "decay"
    import json

    json.dumps(result.to_json())


def test_audit_shows_unclassified_rows_and_renders(capsys):
    from rich.console import Console

    result = audit(TinyViT(), "l2reg", compare="mingpt")
    errors = [d for d in result.compared["mingpt"] if d.error]
    assert {d.name for d in errors} == {"cls_token", "pos_embed", "stem.weight", "bn.weight", "blocks.0.ls.gamma",
                                        "blocks.1.ls.gamma", "temperature"}
    assert result.to_json()["compared"]["mingpt"]["totals"]["unclassified"]["tensors"] == 7
    console = Console(width=200, record=True)
    for t in audit_tables(result):
        console.print(t)
    text = console.export_text()
    assert "pos_embed" in text and "l2reg vs mingpt" in text and "≠" in text


def test_an_audit_that_agrees_says_so_in_one_line():
    from rich.console import Console

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    console = Console(width=200, record=True)
    for t in audit_tables(audit(model, "l2reg", compare=["timm", "hf"])):
        console.print(t)
    text = console.export_text()
    for other in ("timm", "hf"):
        assert f"l2reg vs {other}: no differences (every parameter decided alike)." in text
    assert "decided differently" not in text


# ---------------------------------------------------------------- load_factory


FACTORY_MODULE = """
import torch.nn as nn
def make():
    return nn.Linear(3, 2)
def broken():
    raise RuntimeError("no GPU\\nsecond line")
def not_a_model():
    return [1, 2]
value = 3
"""


@pytest.fixture
def factory_dir(tmp_path, monkeypatch):
    (tmp_path / "my_models_for_l2reg.py").write_text(textwrap.dedent(FACTORY_MODULE))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("my_models_for_l2reg", None)


def test_load_factory_from_module_and_file(factory_dir):
    model = load_factory("my_models_for_l2reg:make")()
    assert isinstance(model, nn.Linear) and model.in_features == 3
    assert isinstance(load_factory(str(factory_dir / "my_models_for_l2reg.py") + ":make")(), nn.Linear)


@pytest.mark.parametrize("spec,message", [
    ("my_models_for_l2reg", "factory must be 'module:function'"),
    ("no_such_module_l2reg:make", "cannot import module 'no_such_module_l2reg' of factory 'no_such_module_l2reg:make': "
                                  "ModuleNotFoundError"),
    ("my_models_for_l2reg:missing", "module 'my_models_for_l2reg' has no attribute 'missing'"),
    ("my_models_for_l2reg:value", "factory 'my_models_for_l2reg:value' is not callable; got int."),
    ("my_models_for_l2reg:broken", "factory 'my_models_for_l2reg:broken' raised RuntimeError: no GPU second line."),
    ("my_models_for_l2reg:not_a_model", "must return a torch.nn.Module; got list."),
    ("nowhere/models.py:make", "file nowhere/models.py does not exist"),
])
def test_load_factory_errors_are_one_line(factory_dir, spec, message):
    with pytest.raises(L2RegError) as info:
        load_factory(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- imports


def test_import_l2reg_does_not_import_torch_and_missing_torch_is_one_line():
    code = textwrap.dedent("""
        import sys
        import l2reg, l2reg.fronts.conventions
        assert "torch" not in sys.modules, "import l2reg imported torch"
        assert "jax" not in sys.modules, "l2reg.fronts.conventions (decay_timescale) imported JAX"
        sys.modules["torch"] = None  # as if PyTorch were not installed
        try:
            import l2reg.torch
        except l2reg.ConfigError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'l2reg.torch needs PyTorch: pip install -e ".[torch]" (in your clone of l2reg).'
