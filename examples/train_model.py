"""Train a world model of GridMARL-v0 and check it against the exact rules, in a few lines.

python examples/train_model.py                       # about 2 minutes on two CPU cores
python examples/train_model.py --steps 100 --out /tmp/wm   # a quick look

The same as `gridmarl-wm collect`, `gridmarl-wm train` and `gridmarl-wm eval`, as library calls.
"""

import argparse

import gridmarl
from gridmarl_wm import WorldModel
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import exhaustive_metrics
from gridmarl_wm.training.trainer import TrainConfig, Trainer, architecture_defaults, model_config_for


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2200, help="training steps of batch 512")
    parser.add_argument("--out", default="runs/example_wm", help="checkpoint, config and metrics go here")
    parser.add_argument("--states", type=int, default=2000, help="reachable states to check (47,040 in all)")
    args = parser.parse_args()

    # 1. Data: every player's view of 64 games of random play, 400 steps each.
    game = gridmarl.make_config()  # the default 4x4 game with two players
    data = collect(game, CollectConfig(steps=400, num_envs=64, seed=0))
    print(f"{len(data):,} transitions")

    # 2. A model sized for this game (reward classes and counts per cell come from the data), trained: the
    #    main job's model (mixture decoder, MLP trunk, FiLM), as `gridmarl-wm train` builds by default.
    model = WorldModel(model_config_for(game, data, **architecture_defaults()))
    trainer = Trainer(model, data, game, TrainConfig(steps=args.steps), args.out)
    trainer.run(progress=True)

    # 3. Load the checkpoint as a user would, and measure it against the game's exact distribution.
    model = WorldModel.load(trainer.checkpoint_path)
    report = exhaustive_metrics(model, game, sample_states=args.states, seed=0)
    print(
        f"over {report['n_transitions']:,} transitions: TV mean {report['tv_mean']:.4f}, "
        f"p99 {report['tv_p99']:.4f}; deterministic accuracy {report['det_acc']:.2%}; "
        f"reward accuracy {report['reward_acc']:.2%}"
    )
    print(f"checkpoint: {trainer.checkpoint_path}")


if __name__ == "__main__":
    main()
