"""Cache entries carry their row count and a checksum, written last; one that is cut, garbled or
replaced is rebuilt with a warning naming the file (issue 27, item 5)."""

import json
import logging


from sgpo_lib.config.run import load_config
from sgpo_lib.core import cache_files, fileio
from sgpo_lib.method.evaluate import cached_rows
from sgpo_lib.train import warmup
from sgpo_lib.workflow import assets


def test_a_sealed_file_is_intact_until_it_is_cut_garbled_or_replaced(tmp_path, caplog):
    path = tmp_path / "table.json"
    fileio.write_json(path, [{"a": 1}, {"a": 2}])
    assert not cache_files.intact(path, warn=False)  # no seal yet: not trusted
    cache_files.seal(path)
    assert cache_files.intact(path)
    for text, fault in (("[]", "holds 0 rows where 2 were written"), ("[{\"a\": 1}, {\"a\"", "is garbled"),
                        ('[{"a": 1}, {"a": 3}]', "differs from what was written")):
        path.write_text(text)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sgpo_lib"):
            assert not cache_files.intact(path)
        assert f"cache entry {path} {fault}" in caplog.text


def test_a_step0_evaluation_cache_replaced_by_an_empty_list_is_computed_again(tmp_path, caplog):
    path = tmp_path / "start_evals" / "abc" / "problems.json"
    rows = [{"split": "test", "source": "toy/sum", "problem_id": "p1", "k": 2, "greedy": 1.0, "correct": 1}]
    calls = []

    def compute():
        calls.append(1)
        return rows

    cached_rows(path, compute)
    assert cached_rows(path, compute) == rows
    assert len(calls) == 1
    for damage in ("[]", "{not json"):
        path.write_text(damage)
        with caplog.at_level(logging.WARNING, logger="sgpo_lib"):
            assert cached_rows(path, compute) == rows
        assert str(path) in caplog.text
    assert len(calls) == 3 and json.loads(path.read_text())[0]["correct"] == 1


def test_a_strategy_library_cut_short_is_extracted_again(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SGPO_OUTPUTS", raising=False)
    p = tmp_path / "exp.yaml"
    p.write_text(f"output:\n  root: {tmp_path / 'out'}\n")
    cfg = load_config(p)
    library, _ = assets.strategy_library(cfg)  # the toy extractor: offline, seconds
    path = next((tmp_path / "out" / "cache" / "strategies").glob("*/library.jsonl"))
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == len(library) > 10
    path.write_text("".join(lines[:10]))
    with caplog.at_level(logging.WARNING, logger="sgpo_lib"):
        again, _ = assets.strategy_library(cfg)
    assert f"cache entry {path} holds 10 rows where {len(lines)} were written: rebuilding it" in caplog.text
    assert len(again) == len(library) and cache_files.intact(path)


def test_a_damaged_warmup_record_is_built_again(tmp_path, monkeypatch):
    out = tmp_path / "warmup" / "abc"
    monkeypatch.setattr(warmup, "folder", lambda *a: out)
    monkeypatch.setattr(warmup, "_check_complete", lambda out: None)
    built = []

    def build(cfg, base_dir, warm, evals, out):
        built.append(out)
        fileio.write_json(out / warmup.META_FILE, {"steps": 4})
        cache_files.seal(out / warmup.META_FILE)

    monkeypatch.setattr(warmup, "_build", build)
    warmup.prepare(None, tmp_path, [], [])
    warmup.prepare(None, tmp_path, [], [])
    assert built == [out]
    (out / warmup.META_FILE).write_text('{"steps": ')
    warmup.prepare(None, tmp_path, [], [])
    assert built == [out, out]
