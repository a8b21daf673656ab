"""Where an RL run's gains go: its start and its final model at two temperatures, on held-out test
problems and on its own RL training problems (the toy README's *Measured regime*, issue 25).

RL samples its rollouts at temperature 1; the evaluation samples at `eval.temperature` (0.6). A run
whose accuracy rises at 1 on its training problems and falls at 0.6 improved its distribution's
tail and worsened its mode. Prints avg@k (points) per family and macro for each (model, problems,
temperature), the first `--per-family` problems of each family, k = `eval.k`, the run's seed.

    OMP_NUM_THREADS=2 python -m bench.rl_temperature_gap outputs/<run>/main/train.method=sft_grpo_seed=1
"""

from __future__ import annotations

import argparse
from pathlib import Path

TEMPERATURES = (0.6, 1.0)


def family_means(rows: list[dict]) -> dict[str, float]:
    """avg@k in points per family (the source's last part) and `macro` (the mean over families) of
    `method.evaluate.evaluate_rows`'s rows of one split (`method.evaluate.summarize`)."""
    from sgpo_lib.method.evaluate import summarize

    table = summarize(rows)
    return {source.rsplit("/", 1)[-1]: 100 * float(v) for source, v in zip(table["source"], table["avg@k"])}


def run(run_dir: Path, per_family: int) -> list[dict]:
    """One row per (model, problems, temperature): `family_means` of the run's start and final model."""
    from sgpo_lib.config.run import load_config
    from sgpo_lib.data.batches import eval_subset
    from sgpo_lib.grading.grader import grader_for
    from sgpo_lib.method.evaluate import evaluate_rows
    from sgpo_lib.model.generation import TransformersGenerator
    from sgpo_lib.train.backends import load_student
    from sgpo_lib.workflow import assets

    cfg = load_config(run_dir / "config.yaml")
    data = assets.train_data(cfg)  # the start model (the warm-up for sft_grpo / sgpo) and RL's problems
    sets = {"test": eval_subset(assets.problems(cfg)["test"], ("test",), per_family),
            "RL training": eval_subset(data.train, ("train",), per_family)}
    grader, out = grader_for(cfg), []
    for model_name, final in (("start", None), ("final", run_dir / "final")):
        model, tok = load_student(cfg, data.model_dir, final)
        generator = TransformersGenerator(model, tok)
        for problems_name, problems in sets.items():
            for t in TEMPERATURES:
                rows = evaluate_rows(generator, tok, problems, grader, k=cfg.eval.k, temperature=t,
                                     top_p=cfg.eval.top_p if t != 1.0 else 1.0, seed=cfg.seed, instruction=cfg.instruction,
                                     max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens)
                out.append({"model": model_name, "problems": problems_name, "temperature": t, **family_means(rows)})
                print({k: round(v, 1) if isinstance(v, float) else v for k, v in out[-1].items()}, flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished training run folder (config.yaml, final/)")
    parser.add_argument("--per-family", type=int, default=32, help="problems of each family and set")
    args = parser.parse_args(argv)
    run(args.run_dir, args.per_family)


if __name__ == "__main__":
    main()
