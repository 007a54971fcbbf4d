"""The batched trainer gives each network the numbers of `langevin.train` run on it alone (float64, fixed seeds)."""

import copy

import numpy as np
import pytest
import torch

from pipeline.data.datasets import Split
from pipeline.nets.ginn import GINN
from pipeline.nets.mlp import MLP
from pipeline.training.batched import BatchedSpec, stack, train_batched
from pipeline.training.langevin import evaluate, train, train_spec_with_defaults


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one torch thread is fastest (and the stage trains with ginn.train.threads = 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(n=45, d=5, classes=3, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = lambda m: torch.randn(m, d, generator=g, dtype=torch.float64)  # noqa: E731
    y = lambda m: torch.randint(0, classes, (m,), generator=g)  # noqa: E731
    return Split(x(n), y(n), x(9), y(9), x(11), y(11), classes)


def _nets(kind, data, sigma_w2s, seeds):
    if kind == "mlp":
        build = lambda sw, s: MLP(data.d_in, 8, 3, data.n_classes, sw, 0.05, "tanh", s, torch.float64)  # noqa: E731
    else:
        act = kind.split("-")[1]
        build = lambda sw, s: GINN(data.d_in, 8, 3, data.n_classes, sw, act, -0.1, s, torch.float64)  # noqa: E731
    return [build(sw, s) for sw in sigma_w2s for s in seeds]


@pytest.mark.parametrize(
    "kind, optimizer, lrs, max_loss, diverged",
    [
        ("mlp", "adam", [1e-2, 3e-3, 2e-2, 5e-3], 50.0, [False] * 4),
        ("ginn-tanh", "adam", [1e-2, 3e-3, 2e-2, 5e-3], 50.0, [False] * 4),
        ("ginn-modrelu", "adam", [1e-2, 3e-3, 2e-2, 5e-3], 50.0, [False] * 4),
        # one lr for all: Adam's one-pass update of the whole stack
        ("mlp", "adam", [2e-2] * 4, 50.0, [False] * 4),
        ("ginn-tanh", "adam", [2e-2] * 4, 50.0, [False] * 4),
        ("ginn-modrelu", "adam", [2e-2] * 4, 50.0, [False] * 4),
        # one lr for all until the first network diverges (epoch 1), then the per-network update without it
        ("mlp", "adam", [1.0] * 4, 5.0, [True, False, False, False]),
        ("mlp", "sgd", [0.05, 0.1, 1e4, 0.02], 50.0, [False, False, True, False]),  # frozen, the rest unharmed
    ],
)
def test_batched_training_equals_training_each_network_alone(kind, optimizer, lrs, max_loss, diverged):
    data = _split()
    seeds = [3, 8]
    nets = _nets(kind, data, [1.2, 2.5], seeds)
    order = [s for _ in range(2) for s in seeds]
    spec = BatchedSpec(optimizer=optimizer, epochs=3, batch_size=16, max_loss=max_loss)
    res = train_batched(nets, data, spec, lrs, order)
    # the batched run must not have touched the modules it was built from
    assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), _nets(kind, data, [1.2], [3])[0].parameters()))
    for k, (net, lr, seed) in enumerate(zip(nets, lrs, order)):
        alone = copy.deepcopy(net)
        r = train(
            alone,
            data,
            train_spec_with_defaults(
                optimizer=optimizer, lr=lr, epochs=3, batch_size=16, seed=seed, max_loss=max_loss, restore_best=False
            ),
            progress=False,
        )
        assert bool(res.diverged[k]) == r.diverged
        hist = [h["train_loss"] for h in r.history]
        torch.testing.assert_close(
            res.train_loss[k, : len(hist)], torch.tensor(hist, dtype=torch.float64), rtol=1e-10, atol=0.0
        )
        assert torch.isnan(res.train_loss[k, len(hist) :]).all()
        assert float(res.test_accuracy[k]) == pytest.approx(r.test_accuracy)
        assert float(res.train_accuracy[k]) == pytest.approx(evaluate(alone, data.x_train, data.y_train)[1])
        for p_alone, p_stacked in zip(_flat(alone, kind), res.model.network(k)):
            torch.testing.assert_close(p_stacked, p_alone, rtol=1e-9, atol=1e-11)
    assert res.diverged.tolist() == diverged


def _flat(net, kind):
    """A network's parameters in the stacked order."""
    if kind == "mlp":
        return [*(l.weight for l in net.layers), *(l.bias for l in net.layers), net.readout.weight, net.readout.bias]
    offsets = [a.b_raw for a in net.acts] if kind == "ginn-modrelu" else []
    return [
        *(l.rho_raw for l in net.links),
        *(l.theta for l in net.links),
        *offsets,
        net.readout.weight,
        net.readout.bias,
    ]


def test_stack_rejects_mixed_kinds_and_langevin_is_refused():
    data = _split()
    with pytest.raises(ValueError, match="one kind"):
        stack([*_nets("mlp", data, [1.0], [0]), *_nets("ginn-tanh", data, [1.0], [0])])
    with pytest.raises(ValueError, match="train.optimizer='langevin'"):
        train_batched(_nets("mlp", data, [1.0], [0]), data, BatchedSpec(optimizer="langevin", epochs=1,
                      batch_size=8, max_loss=10.0), [0.1], [0])  # fmt: skip


def test_the_map_is_keyed_and_does_not_depend_on_workers_or_chunking():
    from pipeline.training.trainability_map import trainability_map

    data = _split()
    spec = BatchedSpec(optimizer="adam", epochs=1, batch_size=16, max_loss=50.0)

    def build(model, depth, sw, seed):
        return _nets("mlp" if model == "mlp" else "ginn-tanh", data, [sw], [seed])[0]

    args = (build, data, ["mlp", "ginn"], [1.0, 2.0], [1, 2, 3], [0, 1], 8, spec, 1e-2)
    one = trainability_map(*args, memory_gb=1.0, workers=1)
    two = trainability_map(*args, memory_gb=1e-6, workers=2)  # one network per chunk, two threads
    assert len(one) == 24 and not one.duplicated(["model", "sigma_w2", "depth", "seed"]).any()
    cols = ["train_accuracy", "test_accuracy", "final_train_loss"]
    np.testing.assert_allclose(one[cols].to_numpy(), two[cols].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("kind", ["ginn-tanh", "ginn-modrelu", "ginn-identity", "mlp"])
def test_stacked_logits_and_gradients_equal_each_networks_autograd(kind):
    """The stack's real-arithmetic forward and hand-written backward against torch autograd through each network
    (the GINN's complex links), including an all-zero input, where z = 0 and |z| has no derivative."""
    data = _split()
    nets = _nets(kind, data, [0.7, 2.5], [3, 8])
    model = stack(nets)
    x = data.x_train[:16].clone()
    x[5] = 0.0
    w = torch.randn(len(nets), 16, data.n_classes, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits = model(x.expand(len(nets), -1, -1))
    (logits * w).sum().backward()
    for k, net in enumerate(nets):
        out = net(x)
        torch.testing.assert_close(logits[k].detach(), out.detach(), rtol=1e-12, atol=1e-13)
        (out * w[k]).sum().backward()
        grads = [p.grad[k].T if p.grad[k].dim() == 2 else p.grad[k] for p in model.parameters()]
        for g_stacked, p in zip(grads, _flat(net, kind.replace("identity", "tanh"))):
            assert torch.isfinite(g_stacked).all()
            torch.testing.assert_close(g_stacked, p.grad, rtol=1e-10, atol=1e-12)
