"""The scikit-learn estimators: scikit-learn's own checks, GridSearchCV, and the CV estimator."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from l2reg.data import load_dataset
from l2reg.errors import ConfigError, DataError
from l2reg.sklearn import L2MLPClassifier, L2MLPClassifierCV, L2MLPRegressor

from jax_cache import compilation_cache  # noqa: F401  (a fixture)

# scikit-learn's checks fit each estimator ~50 times on about a dozen shapes.
pytestmark = pytest.mark.usefixtures("compilation_cache")

# Few epochs and a small hidden layer keep the ~40 checks per estimator fast.
FAST = dict(hidden_layer_sizes=(8,), epochs=5)


# Every check passes: none is xfailed. The only skips are scikit-learn's own,
# with its reasons (pandas not installed; SCIPY_ARRAY_API not set).
@parametrize_with_checks(
    [L2MLPClassifier(**FAST), L2MLPRegressor(**FAST), L2MLPClassifierCV(lmbda=[0.0, 1.0], cv=3, **FAST)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def balanced():
    """90 digits, 9 per class: 3 stratified folds of exactly 60 training examples each."""
    d = load_dataset("digits")
    idx = np.concatenate([np.flatnonzero(d.y_train == c)[:9] for c in range(10)])
    return d.X_train[idx], d.y_train[idx]


def test_grid_search_over_lmbda_works_and_the_cv_estimator_matches_it(balanced):
    X, y = balanced
    grid = [0.0, 3.0, 100.0]
    cv = StratifiedKFold(3)
    base = L2MLPClassifier(hidden_layer_sizes=(10,), epochs=8, random_state=0)
    gs = GridSearchCV(base, {"lmbda": grid}, cv=cv).fit(X, y)
    est = L2MLPClassifierCV(lmbda=grid, cv=cv, hidden_layer_sizes=(10,), epochs=8, random_state=0).fit(X, y)
    # every fold model of the vectorized run is the model GridSearchCV fits for that (λ, fold)
    for i in range(3):
        np.testing.assert_allclose(est.cv_results_[f"split{i}_test_score"], gs.cv_results_[f"split{i}_test_score"],
                                   atol=1e-9)
    np.testing.assert_allclose(est.cv_results_["mean_test_score"], gs.cv_results_["mean_test_score"], atol=1e-9)
    # the same choice; on a tie of mean scores GridSearchCV takes the first λ, the CV estimator the largest
    mean = gs.cv_results_["mean_test_score"]
    assert est.lmbda_ == max(lm for lm, s in zip(grid, mean) if s == mean.max())
    assert mean[grid.index(est.lmbda_)] == mean[grid.index(gs.best_params_["lmbda"])]
    assert est.cv_results_["params"] == gs.cv_results_["params"]
    np.testing.assert_array_equal(est.cv_results_["rank_test_score"], gs.cv_results_["rank_test_score"])
    refit = L2MLPClassifier(hidden_layer_sizes=(10,), epochs=8, lmbda=est.lmbda_, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(X), refit.predict_proba(X), atol=1e-5)


def test_cv_estimator_attributes_and_1se(balanced):
    X, y = balanced
    grid = [0.0, 0.5, 5.0, 50.0]
    fitted = {s: L2MLPClassifierCV(lmbda=grid, cv=3, select=s, **FAST, random_state=1).fit(X, y)
              for s in ("min", "1se")}
    m, s = fitted["min"], fitted["1se"]
    assert m.lmbdas_ == grid and m.lmbda_ in grid and m.best_score_ == m.cv_results_["mean_test_score"][m.best_index_]
    assert s.lmbda_ >= m.lmbda_
    assert m.n_features_in_ == 64 and list(m.classes_) == list(range(10))
    default3 = L2MLPClassifierCV(n_lmbdas=3, cv=3, **FAST).fit(X, y)
    assert default3.lmbdas_[0] == 0.0 and len(default3.lmbdas_) == 4  # λ = 0 plus 3 log-spaced values


def test_cv_estimator_lmbda_is_always_lambda_values(balanced):
    """``lmbda=5`` is λ = 5, as ``lmbda=5.0``; the default grid's size is ``n_lmbdas``."""
    X, y = balanced
    as_int = L2MLPClassifierCV(lmbda=5, cv=3, **FAST, random_state=0).fit(X, y)
    as_float = L2MLPClassifierCV(lmbda=5.0, cv=3, **FAST, random_state=0).fit(X, y)
    assert as_int.lmbdas_ == as_float.lmbdas_ == [5.0] and as_int.lmbda_ == 5.0
    np.testing.assert_array_equal(as_int.coefs_[0], as_float.coefs_[0])


def test_cv_estimator_eta_grid_chooses_the_best_pair_of_separate_runs(balanced):
    X, y = balanced
    etas, grid, cv = [0.05, 0.5], [0.0, 5.0], StratifiedKFold(3)
    kw = dict(hidden_layer_sizes=(8,), epochs=4, random_state=0)
    est = L2MLPClassifierCV(lmbda=grid, eta=etas, cv=cv, **kw).fit(X, y)
    # each (η, λ) pair scored by its own GridSearchCV-style run, one model per fold
    pairs = [(e, lm) for e in etas for lm in grid]
    separate = np.array([GridSearchCV(L2MLPClassifier(eta=e, lmbda=lm, **kw), {"lmbda": [lm]}, cv=cv)
                         .fit(X, y).cv_results_["mean_test_score"][0] for e, lm in pairs])
    np.testing.assert_allclose(est.cv_results_["mean_test_score"], separate, atol=1e-9)
    assert [(p["eta"], p["lmbda"]) for p in est.cv_results_["params"]] == pairs
    assert list(est.cv_results_["param_eta"]) == [e for e, _ in pairs]
    # the chosen pair has the best mean (ties: the later pair, as sweep.select_pair)
    best = max(i for i, s in enumerate(separate) if s == separate.max())
    assert (est.eta_, est.lmbda_) == pairs[best] and est.best_index_ == best
    assert est.etas_ == etas and est.best_score_ == pytest.approx(separate.max())
    refit = L2MLPClassifier(eta=est.eta_, lmbda=est.lmbda_, **kw).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(X), refit.predict_proba(X), atol=1e-5)


def test_cv_estimator_without_etas_uses_eta(balanced):
    X, y = balanced
    est = L2MLPClassifierCV(lmbda=[0.0, 1.0], cv=3, eta=0.3, **FAST, random_state=0).fit(X, y)
    assert est.eta_ == 0.3 and est.etas_ == [0.3] and est.cv_results_["params"] == [{"lmbda": 0.0}, {"lmbda": 1.0}]
    assert list(est.cv_results_["param_eta"]) == [0.3, 0.3]


@pytest.mark.parametrize("cost", ["cross-entropy", "log-likelihood", "quadratic"])
def test_predict_proba_is_a_distribution_and_predict_its_argmax(balanced, cost):
    X, y = balanced
    clf = L2MLPClassifier(cost=cost, random_state=0, **FAST).fit(X, y * 2 + 1)  # labels 1, 3, ..., 19
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 10) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[p.argmax(axis=1)])
    assert set(clf.predict(X)) <= set(range(1, 20, 2))


def test_lmbda_shrinks_the_weights(balanced):
    X, y = balanced
    sq = [sum(float((w**2).sum()) for w in L2MLPClassifier(lmbda=lm, random_state=0, **FAST).fit(X, y).coefs_)
          for lm in (0.0, 10.0)]
    assert sq[1] < 0.8 * sq[0]


def test_regressor_one_and_several_targets():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    Y = np.stack([X @ [1.0, -1.0, 0.5], X[:, 0] ** 2], axis=1)
    one = L2MLPRegressor(lmbda=0.0, epochs=30, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (80,) and one.score(X, Y[:, 0]) > 0.8
    two = L2MLPRegressor(lmbda=0.0, epochs=5, random_state=0).fit(X, Y)
    assert two.predict(X).shape == (80, 2) and two.n_outputs_ == 2


BAD = [
    (L2MLPClassifier(lmbda=-1.0), ConfigError, "lmbda must be a finite number >= 0; got -1.0."),
    (L2MLPClassifier(eta=0.0), ConfigError, "eta must be a finite number > 0; got 0.0."),
    (L2MLPClassifier(hidden_layer_sizes=(0,)), ConfigError, "hidden_layer_sizes must be an integer >= 1; got 0."),
    (L2MLPClassifier(hidden_layer_sizes="30"), TypeError, "hidden_layer_sizes must be an integer or a tuple"),
    (L2MLPClassifier(activation="softplus"), ConfigError, "activation must be one of sigmoid, tanh, relu"),
    (L2MLPClassifier(epochs=0), ConfigError, "epochs must be an integer >= 1; got 0."),
    (L2MLPRegressor(cost="cross-entropy"), ConfigError, "L2MLPRegressor needs cost='quadratic'"),
    (L2MLPClassifierCV(lmbda=[]), ConfigError, "lmbda must not be empty."),
    (L2MLPClassifierCV(lmbda=[0.0, -1.0]), ConfigError, "lmbda must be a finite number >= 0; got -1.0."),
    (L2MLPClassifierCV(lmbda=[0.0, np.nan]), ConfigError, "lmbda must be a finite number >= 0; got nan."),
    (L2MLPClassifierCV(select="max"), ConfigError, "select must be one of min, 1se; got 'max'."),
    (L2MLPClassifierCV(n_lmbdas=0), ConfigError, "n_lmbdas must be an integer >= 1; got 0."),
    (L2MLPClassifierCV(lmbda=[0.0, 1.0], n_lmbdas=3), ConfigError, "give lmbda (the λ values) or n_lmbdas"),
    (L2MLPClassifierCV(eta=[0.1, 0.0]), ConfigError, "eta must be a finite number > 0; got 0.0."),
    (L2MLPClassifierCV(cv=1), ValueError, "n_splits=2 or more"),
]


@pytest.mark.parametrize("est,exc,message", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_parameters_fail_in_fit_with_one_line(balanced, est, exc, message):
    X, y = balanced
    with pytest.raises(exc) as e:
        est.fit(X, y.astype(float) if isinstance(est, L2MLPRegressor) else y)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_class_is_refused():
    with pytest.raises(DataError, match="only one class"):
        L2MLPClassifier(**FAST).fit(np.zeros((5, 2)), np.ones(5))
