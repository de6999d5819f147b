"""Pipeline specs: keys are the commands' own parameters, checked before anything runs."""

import pytest
from tests_support import assert_clean_error


def _spec(tmp_path, corpus, train_keys: str):
    spec = tmp_path / "p.yaml"
    spec.write_text(f"""
stages:
  prepare: {{source: {corpus}, name: p, level: word}}
  train: {{dataset: p, {train_keys}}}
""")
    return spec


def test_an_unknown_key_names_the_valid_ones_before_any_stage_runs(cli, tmp_path, word_corpus):
    spec = _spec(tmp_path, word_corpus, "max_tme: 5")
    result = cli("run", spec)
    assert_clean_error(result, "stage 'train' has no key 'max_tme'")
    assert "max_time" in result.err and "hidden_size" in result.err and "cell" in result.err
    assert not (tmp_path / "artifacts" / "dataset").exists()  # prepare did not run


def test_a_missing_positional_is_named(cli, tmp_path, word_corpus):
    spec = tmp_path / "p.yaml"
    spec.write_text("stages:\n  train: {max_steps: 3}\n")
    assert_clean_error(cli("run", spec), "stage 'train' needs 'dataset'")


@pytest.mark.parametrize("keys, flags", [
    ("tied: true", "--tied"),
    ("tied: false", "--no-tied"),
    ("cutoffs: [10, 20]", "--cutoffs 10,20"),
    ("max_steps: 7", "--max-steps 7"),
])
def test_stage_keys_become_the_commands_flags(keys, flags):
    import typer
    import yaml

    from lm.cli import app
    from lm.pipelines import stage_argv

    commands = typer.main.get_command(app).commands
    argv = stage_argv("train", {"dataset": "p", **yaml.safe_load(keys)}, commands)
    assert " ".join(argv).startswith("train p ")
    assert flags in " ".join(argv)


def test_output_flags_spelled_differently_from_their_key(cli):
    import typer

    from lm.cli import app
    from lm.pipelines import stage_argv

    commands = typer.main.get_command(app).commands
    assert stage_argv("perplexity", {"model": "m", "as_json": True}, commands) == [
        "perplexity", "m", "--json"]
    assert stage_argv("compare", {"refs": ["a", "b"]}, commands) == ["compare", "a", "b"]
