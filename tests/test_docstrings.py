"""Every public function and estimator documents exactly the parameters its signature takes.

The public face: ``l2reg.__all__``, the estimators, ``l2reg.torch.__all__`` and ``l2reg.jax.__all__``.

Documented means named in double backquotes (````lmbda````) or given a
numpydoc entry (``lmbda : float``) in its docstring (a class: its own
docstring, for its constructor). Exactly: every
parameter is documented, and no name is documented as a parameter that the
signature does not take (``name`` followed by a colon, an equals sign or
"is"/"are", or a name that another public function takes, or one of the
names l2reg spells otherwise, such as ``lmbdas``).
"""

import inspect
import re

import pytest

import l2reg
import l2reg.sklearn

#: Names l2reg spells otherwise (``lmbda``, ``eta``), never parameters.
NOT_PARAMETERS = {"lmbdas", "etas", "lambda", "alphas"}


def _public(module, names):
    out = []
    for name in names:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            out.append((f"{module.__name__}.{name}", obj, obj))
        elif inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__") and not issubclass(obj, Exception):
            out.append((f"{module.__name__}.{name}", obj.__init__, obj))
    return out


def _surface():
    items = _public(l2reg, [n for n in l2reg.__all__ if n not in ("__version__",)])
    items += _public(l2reg.sklearn, [n for n in dir(l2reg.sklearn) if n.startswith("L2MLP")])
    try:
        import l2reg.torch as lt
    except Exception:  # noqa: BLE001  (torch not installed)
        lt = None
    if lt is not None:
        items += _public(lt, lt.__all__)
    import l2reg.jax as lj  # JAX and optax only (Flax and Equinox are imported when a model of theirs is given)

    items += _public(lj, lj.__all__)
    return items


def _params(fn) -> list[str]:
    sig = inspect.signature(fn)
    return [p for p, v in sig.parameters.items() if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]


SURFACE = _surface()
EVERY_PARAMETER = {p for _, fn, _ in SURFACE for p in _params(fn)}


@pytest.mark.parametrize("name, fn, owner", SURFACE, ids=[s[0] for s in SURFACE])
def test_docstring_documents_exactly_the_signature(name, fn, owner):
    doc = inspect.getdoc(owner) or ""
    params = set(_params(fn))
    entries = {name for line in re.findall(r"^([A-Za-z_][\w, ]*) : ", doc, flags=re.M) for name in
               re.split(r",\s*", line.strip())}
    quoted = set(re.findall(r"``([A-Za-z_][A-Za-z0-9_]*)``", doc)) | entries
    missing = sorted(params - quoted)
    assert not missing, f"{name}: parameters not documented: {missing}"
    as_parameter = set(re.findall(r"``([A-Za-z_][A-Za-z0-9_]*)``\s*(?::|=|is\b|are\b)", doc)) | entries
    foreign = {q for q in quoted - params if not q.endswith("_")
               and (q in NOT_PARAMETERS or (q in as_parameter and q in EVERY_PARAMETER))}
    assert not foreign, f"{name}: documents {sorted(foreign)}, which its signature does not take"
