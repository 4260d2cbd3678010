"""levelup.model.networks: building or loading a network leaves torch's global random stream
where it was, and imports nothing heavy (sympy: 0.7 s per process, what moving layers off the
meta device cost)."""

from __future__ import annotations

import subprocess
import sys

import torch

from levelup.model.networks import build_network, describe_network, network_from_spec


def test_building_and_loading_draw_nothing_from_the_global_generator():
    torch.manual_seed(3)
    expected = torch.rand(5)
    torch.manual_seed(3)
    net = build_network(48, (16, 8))
    network_from_spec(describe_network(net))
    assert torch.equal(torch.rand(5), expected)
    assert [m.weight.shape for m in net if isinstance(m, torch.nn.Linear)] == [
        (16, 48), (8, 16), (1, 8)]


def test_building_a_model_imports_no_sympy():
    code = ("import sys\n"
            "from levelup.model.ani import ANIModel\n"
            "ANIModel(['H', 'O'])\n"
            "print('sympy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
