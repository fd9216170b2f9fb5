"""Configuration: YAML layers, --set overrides, unknown keys and bad values, shipped recipes."""
from pathlib import Path

import pytest

from jeoparda.config import config_text, load_config
from jeoparda.errors import JeopardaError

CONFIGS = Path(__file__).resolve().parents[2] / "benchmarks" / "configs"


def test_layers_then_overrides(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("model: bwms\ntrain: {epochs: 7, lr: 0.01}\n")
    b.write_text("train: {epochs: 9}\ndata: {augment: {mixup_alpha: 0.2}}\n")
    cfg = load_config([a, b], ["train.lr=3e-4", "data.backend=synthetic", "dist.backend=single"])
    assert (cfg.model, cfg.train.epochs, cfg.train.lr) == ("bwms", 9, 3e-4)
    assert cfg.data.augment.mixup_alpha == 0.2 and cfg.data.backend == "synthetic"
    (tmp_path / "resolved.yaml").write_text(config_text(cfg))  # what a run folder's config.yaml holds
    assert load_config([tmp_path / "resolved.yaml"]) == cfg


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_recipes_load(name):
    from jeoparda.models import list_models

    cfg = load_config([CONFIGS / name], ["data.path=/data"])
    # a recipe is named after its model or its family (resnet18.yaml, eurosat_resnet18.yaml,
    # resnet18_jeoparda.yaml, fcn_bigearthnet.yaml for fcn_maggiori)
    parts = name.removesuffix(".yaml").split("_")
    assert (cfg.model in parts or cfg.model.split("_")[0] in parts) and cfg.data.path == "/data"
    assert cfg.model in [e.name for e in list_models()]


def test_bwms_recipe_is_the_papers():
    t = load_config([CONFIGS / "bwms.yaml"]).train
    assert (t.optimizer, t.lr, t.weight_decay, t.step_epochs, t.step_gamma, t.global_batch_size, t.epochs) == \
        ("adam", 1e-3, 1e-4, 30, 0.5, 500, 100)


@pytest.mark.parametrize("override, message", [
    ("train.epoch=4", "unknown key 'train.epoch' (did you mean train.epochs?)"),
    ("trian.epochs=4", "unknown key 'trian'"),
    ("train.epochs=many", "train.epochs must be an integer, got 'many'"),
    ("train.channels_last=maybe", "train.channels_last must be true or false"),
    ("data=3", "data is a section"),
    ("dist.backend=mpi", "dist.backend: 'mpi' is not one of ddp, horovod, single"),
    ("train.epochs=0", "train.epochs: must be >= 1"),
    ("novalue", "expected KEY=VALUE"),
])
def test_bad_overrides_are_clear(override, message):
    with pytest.raises(JeopardaError) as info:
        load_config([], [override])
    assert message in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("train.lr=.inf", "train.lr"), ("train.lr=nan", "train.lr"), ("train.lr=-inf", "train.lr"),
    ("train.lr=.NaN", "train.lr"), ("train.weight_decay=inf", "train.weight_decay"),
    ("train.warmup_epochs=nan", "train.warmup_epochs"), ("train.target=nan", "train.target"),
    ("dist.timeout_s=.inf", "dist.timeout_s"), ("dist.setup_timeout_s=nan", "dist.setup_timeout_s"),
    ("data.augment.mixup_alpha=inf", "data.augment.mixup_alpha"),
    ("train.checkpoint_every=-1", "train.checkpoint_every"), ("train.val_every=-2", "train.val_every"),
    ("train.preempt_check_every=-1", "train.preempt_check_every"),
    ("train.keep_checkpoints=-1", "train.keep_checkpoints"), ("train.epochs=-3", "train.epochs"),
    ("train.max_steps=-1", "train.max_steps"), ("train.seed=-1", "train.seed"),
    ("dist.timeout_s=-5", "dist.timeout_s"), ("dist.setup_timeout_s=0", "dist.setup_timeout_s"),
    ("train.momentum=1.5", "train.momentum"), ("train.step_gamma=0", "train.step_gamma"),
    ("train.weight_decay=-0.1", "train.weight_decay"), ("train.lr_base_batch=0", "train.lr_base_batch"),
])
def test_numbers_out_of_range_or_not_finite_are_refused_naming_the_key(override, key):
    with pytest.raises(JeopardaError) as info:
        load_config([], [override])
    assert str(info.value).startswith(f"configuration: {key}: must be") and "\n" not in str(info.value)


def test_non_finite_values_in_a_file_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {lr: .inf}\n")
    with pytest.raises(JeopardaError, match="train.lr: must be a finite number, got inf"):
        load_config([path])


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(JeopardaError, match=f"{bad}: not valid YAML"):
        load_config([bad])
    (tmp_path / "typo.yaml").write_text("train:\n  batchsize: 3\n")
    with pytest.raises(JeopardaError, match="typo.yaml: unknown key 'train.batchsize'"):
        load_config([tmp_path / "typo.yaml"])
    with pytest.raises(JeopardaError, match="cannot read configuration"):
        load_config([tmp_path / "missing.yaml"])


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_resolves_at_1_to_1024_workers(recipe):
    from jeoparda.training.setup import per_worker_batch

    cfg = load_config([recipe])
    for world in [*range(1, 65), 96, 100, 128, 192, 256, 384, 512, 768, 1000, 1024]:
        per, note = per_worker_batch(cfg, world)
        assert per >= 1
        g = cfg.train.global_batch_size
        if g:
            assert abs(per * world - g) <= world / 2 or per == 1  # the nearest global batch
            assert (note == "") == (per * world == g)
            if note:
                assert f"{per} per worker, global batch {per * world}" in note
        else:
            assert per == cfg.train.batch_size and note == ""


def test_bwms_on_eight_workers_rounds_and_says_so():
    from jeoparda.training.setup import per_worker_batch

    cfg = load_config([CONFIGS / "bwms.yaml"])
    assert per_worker_batch(cfg, 8) == (62, "train.global_batch_size 500 does not divide by 8 workers: "
                                            "62 per worker, global batch 496")
    assert per_worker_batch(cfg, 4) == (125, "")


@pytest.mark.parametrize("value", ["alpha", "juwels-booster", "A100_node.v2", "x" * 64, "2024"])
def test_a_system_name_safe_in_file_names_is_taken(value):
    assert load_config([], [f"system.name={value}"]).system.name == value


@pytest.mark.parametrize("value, shown", [
    ("my/cluster", "'/'"), ("two words", "' '"), ("über", "'ü'"), (".hidden", "starts with '.'"),
    ("-x", "starts with '-'"), ("x" * 65, "65 characters"),
])
def test_a_system_name_unsafe_in_file_names_is_one_line(value, shown):
    with pytest.raises(JeopardaError) as info:
        load_config([], [f"system.name={value}"])
    message = str(info.value)
    assert message.startswith("configuration: system.name: ") and shown in message and "\n" not in message
