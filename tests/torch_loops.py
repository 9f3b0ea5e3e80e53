"""The oracle of the PyTorch ensemble tests: the ordinary loop a user writes for one member."""

import numpy as np
import pytest
import torch

from l2reg.torch import decay_groups, epoch_order


def ordinary_epochs(model_fn, X, y, *, member, fold, seed, optimizer, make_optimizer, loss, epochs, batch_size):
    """``torch.manual_seed(seed); model = model_fn(); opt = make_optimizer(decay_groups(model, wd), η)``, then
    for each batch of the fold's order ``zero_grad(); loss(model(x), y).backward(); opt.step()``; yields the
    model (in train mode) and the tensors ``(X, y)`` after each epoch. wd = λ/n, or AdamW's own weight_decay."""
    tr = np.asarray(fold[0])
    torch.manual_seed(seed)
    model = model_fn()
    wd = member.weight_decay if optimizer == "adamw" else member.lmbda / len(tr)
    opt = make_optimizer(decay_groups(model, wd), member.eta)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for e in range(epochs):
        model.train()
        order = tr[epoch_order(seed, len(tr), e)]
        for i in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[i:i + batch_size])
            opt.zero_grad()
            loss(model(Xt[idx]), yt[idx]).backward()
            opt.step()
        yield model, Xt, yt


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds contention on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
