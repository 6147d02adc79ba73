"""Checks that a step of the batched imagined simulator makes no host synchronisation on a GPU, with the
pointer decoder and with the mixture decoder (``tests/test_fast_decoder.py`` runs the same check where a
GPU is present, and a host-round-trip check on any device).

    python benchmarks/check_no_sync.py

PyTorch's sync debug mode turns any synchronising call (a device-to-host copy, `.item()`, a host copy from
pageable memory, a boolean-mask index) into an error; the script steps the simulator under it.
"""

import torch

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.simulation.imagine import ImaginedSimulator
from gridmarl_wm.training.trainer import model_config_for


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=20, num_envs=64, seed=0))
    decoders = {"pointer": {}, "mixture": {"decoder": "mixture", "trunk": "mlp", "fusion": "film"},
                "mixture-no-scorer": {"decoder": "mixture", "trunk": "mlp", "fusion": "film", "mixture_scorer": 0}}  # fmt: skip
    for name, spec in decoders.items():
        model = WorldModel(model_config_for(game, data, **spec)).cuda().eval()
        sim = ImaginedSimulator(model, generator=torch.Generator(device="cuda").manual_seed(0))
        obs = torch.as_tensor(data.obs[:1024], device="cuda").float()
        actions = torch.randint(0, 5, (1024,), device="cuda")
        sim.step(obs, actions)  # warm-up: lazy constants are made here once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        for _ in range(5):
            obs, reward, others = sim.step(obs, actions)
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        print(
            f"{name} decoder, 5 imagined steps of 1,024 games: no host synchronisation (obs {tuple(obs.shape)})"
        )


if __name__ == "__main__":
    main()
