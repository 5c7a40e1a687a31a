"""Config: defaults, YAML files, key=value overrides parsed by field type, unknown keys with close matches."""

import pytest

from concerto3d.config import (ObjectiveConfig, OptimConfig, TrainConfig, apply_overrides, config_keys, from_dict,
                               load_config, to_dict, to_yaml)
from concerto3d.errors import FormatError, InputError


def test_defaults_match_the_design():
    cfg = TrainConfig()
    assert cfg.objective.proj_dim == 256 and cfg.objective.temperature == 0.07
    assert cfg.objective.cross_modal_weight == 1.0 and cfg.objective.distillation_weight == 0.5
    assert (cfg.optim.momentum_schedule, cfg.optim.momentum_start, cfg.optim.momentum_end) == ("cosine", 0.996, 1.0)
    assert cfg.optim.momentum_fixed == 0.999


def test_overrides_are_parsed_by_the_field_type_and_do_not_change_the_input():
    base = TrainConfig()
    cfg = apply_overrides(base, ["optim.lr=5e-4", "objective.temperature=0.1", "steps=12", "amp=no",
                                 "objective.kind=3d", "data.image_size=[32, 48]", "image_encoder.image_size=[32,48]",
                                 "image_encoder.pretrained_path=none", "optim.betas=[0.8, 0.9]"])
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.objective.temperature == 0.1 and cfg.steps == 12 and cfg.amp is False
    assert cfg.objective.kind == "3d" and cfg.data.image_size == (32, 48) and cfg.optim.betas == (0.8, 0.9)
    assert cfg.image_encoder.pretrained_path is None
    assert base.optim.lr == 1e-3 and base.steps == 1000  # the input config is untouched


@pytest.mark.parametrize("item, message", [
    ("optim.lrr=1", "did you mean optim.lr"),
    ("optim.learning_rate=1", "did you mean optim.min_lr"),
    ("objective.temprature=0.1", "did you mean objective.temperature"),
    ("lr=1e-3", "optim.lr"),
    ("nonsense_key_xyz=1", "unknown key"),
    ("steps", "expected key=value"),
    ("steps=ten", "expected an integer"),
    ("amp=maybe", "expected true or false"),
    ("objective.kind=4d", "expected one of joint, 3d, 2d"),
    ("optim.betas=[0.9]", "expected 2 values"),
    ("objective.temperature=-1", "objective.temperature: expected > 0"),
])
def test_bad_overrides_say_what_was_expected(item, message):
    with pytest.raises(InputError, match=message):
        apply_overrides(TrainConfig(), [item])


def test_yaml_round_trip_and_layering(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 2.0e-4\n  warmup_steps: 3\nobjective:\n  distillation: sinkhorn\nsteps: 7\n")
    cfg = load_config(path, ["steps=9"])  # the override wins over the file
    assert cfg.optim.lr == 2e-4 and cfg.optim.warmup_steps == 3 and cfg.objective.distillation == "sinkhorn"
    assert cfg.steps == 9 and cfg.optim.weight_decay == OptimConfig().weight_decay  # untouched keys keep defaults
    full = tmp_path / "full.yaml"
    full.write_text(to_yaml(cfg))
    again = load_config(full)
    assert again == cfg and to_dict(again) == to_dict(cfg)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(FormatError, match="bad.yaml: not a YAML file"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("optim:\n  lrr: 1.0\n")
    with pytest.raises(InputError, match=r"typo.yaml: optim: unknown key 'lrr'; did you mean lr"):
        load_config(typo)


def test_cross_checks_between_sections():
    cfg = apply_overrides(TrainConfig(), ["data.image_size=[32, 48]"])  # the image encoder follows the data
    assert cfg.image_encoder.image_size is None
    assert cfg.image_encoder.following(cfg.data.image_size, 16).image_size == (32, 48)
    with pytest.raises(InputError, match="data.image_size"):
        apply_overrides(TrainConfig(), ["data.image_size=[32, 48]", "image_encoder.image_size=[32, 64]"])
    with pytest.raises(InputError, match="data.patch_size"):
        apply_overrides(TrainConfig(), ["data.patch_size=8", "image_encoder.patch_size=16"])
    with pytest.raises(InputError, match="use_color"):
        apply_overrides(TrainConfig(), ["point_encoder.use_color=false"])


def test_keys_and_from_dict():
    keys = config_keys(TrainConfig)
    assert "optim.lr" in keys and "objective.temperature" in keys and "data.max_points" in keys and "steps" in keys
    obj = from_dict(ObjectiveConfig, {"temperature": 1, "num_prototypes": 64.0})
    assert obj.temperature == 1.0 and isinstance(obj.temperature, float) and obj.num_prototypes == 64
