"""Adapter retention (`train.keep_adapters`): old `adapters/step_N` folders are deleted, the newest
and the checkpointed ones stay, and a resumed run finds the adapter it loads."""

from pathlib import Path

from sgpo_lib.config.run import load_config
from sgpo_lib.model.generation import TransformersGenerator
from sgpo_lib.train import adapters, backends, engine_checks
from sgpo_lib.train.trainer import Trainer
from trainer_fixtures import ParityGrader, make_data, params_file


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_prune_keeps_the_newest_and_the_checkpointed(tmp_path):
    for step in range(1, 7):
        adapters.adapter_dir(tmp_path, step).mkdir(parents=True)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_000002.pt").write_bytes(b"")
    deleted = adapters.prune(tmp_path, keep=2)
    assert _names(tmp_path / "adapters") == ["step_000002", "step_000005", "step_000006"]
    assert sorted(p.name for p in deleted) == ["step_000001", "step_000003", "step_000004"]


class AdapterEngine(TransformersGenerator):
    """The live model as sampler, loading adapters like vLLM: by folder, which must exist."""

    loaded: list[Path] = []

    def update_weights(self, adapter_dir):
        assert (Path(adapter_dir) / "adapter_config.json").exists(), f"{adapter_dir} is gone"
        AdapterEngine.loaded.append(Path(adapter_dir))


def _trainer(tmp_path, model_dir, steps, monkeypatch):
    cfg = load_config(params_file(tmp_path, model_dir, steps),
                      {"rollout.backend": "vllm", "train.keep_adapters": 1, "train.checkpoint_every": 2,
                       "output.keep_checkpoints": 2, "train.method": "grpo"})
    monkeypatch.setattr(backends, "rollout_generator", lambda cfg, model_dir, model, tok, acc: AdapterEngine(model, tok, acc.device))
    monkeypatch.setattr(engine_checks.SyncCheck, "__call__", lambda *a: {})  # the engine is the live model
    return Trainer(cfg, make_data(model_dir), tmp_path / "run", ParityGrader())


def test_a_run_keeps_few_adapters_and_resumes(tmp_path, tiny_model_dir, monkeypatch):
    _trainer(tmp_path, tiny_model_dir, 5, monkeypatch).run()
    run = tmp_path / "run"
    assert _names(run / "adapters") == ["step_000004", "step_000005"]  # the newest, and the checkpoint's (4)
    assert _names(run / "checkpoints") == ["latest.json", "step_000004.pt", "step_000005.pt"]
    (run / "checkpoints" / "step_000005.pt").unlink()  # resume from step 4 as after a kill
    (run / "checkpoints" / "latest.json").unlink()
    _trainer(tmp_path, tiny_model_dir, 5, monkeypatch).run()
    assert AdapterEngine.loaded[-2:] == [adapters.adapter_dir(run, 4), adapters.adapter_dir(run, 5)]
