"""The model card (``README.md``) of a trained model folder, as text: pure functions, no files.

:func:`model_card` writes the card from the folder's ``config.json`` dict alone: YAML front matter the Hugging Face
Hub reads (``library_name: concerto3d``, tags, a licence field that points at the training data's terms), then what
the model was trained on and how, the input it expects, how to load it, its linear-probe results and a licence note.
:mod:`concerto3d.inference.model_folder` writes it at save time.

The probe results sit between two markers (:data:`PROBE_BEGIN`, :data:`PROBE_END`); :func:`with_probe_result` puts
a probe's row there and leaves every character outside the markers as it was, so a card people edited keeps their
words. One row per probed dataset (by data digest): probing the same data again replaces its row.
"""

from __future__ import annotations

import re

__all__ = ["model_card", "with_probe_result", "probe_row", "PROBE_BEGIN", "PROBE_END", "NOT_MEASURED",
           "SCANNET_TERMS_URL"]

PROBE_BEGIN = "<!-- concerto3d:probe:begin (written by `concerto3d probe`; edit outside these markers) -->"
PROBE_END = "<!-- concerto3d:probe:end -->"
NOT_MEASURED = "Linear-probe mIoU: not measured."
SCANNET_TERMS_URL = "https://kaldir.vc.in.tum.de/scannet/ScanNet_TOS.pdf"

_OBJECTIVES = {
    "joint": "Concerto's joint objective: 3D self-distillation of the point encoder (a student against an EMA "
             "teacher on two augmented views of a scene crop) plus 2D-3D alignment of its point features with the "
             "image encoder's patch features of the frames that saw the points (dense and scene-level InfoNCE "
             "through the camera correspondences).",
    "3d": "3D self-distillation alone: the point encoder as a student against its EMA teacher on two augmented "
          "views of a scene crop; no images.",
    "2d": "the image encoder alone, self-distilled between a frame and a crop of it; this folder holds no point "
          "encoder.",
    "supervised": "the point encoder trained on the ScanNet-20 point labels (the ablation's supervised ceiling), "
                  "not self-supervised.",
    "2d-supervised": "the image encoder with a patch classifier trained on the frames' 2D labels (a 2D teacher for "
                     "`--image-encoder`); this folder holds no point encoder.",
}

_ORIGINS = {
    "synthetic": "synthetic scenes made by `concerto3d synth`",
    "scannet": "scans in ScanNet's layout not found to be made by `concerto3d synth`: ScanNet itself, as far as "
               "concerto3d can tell",
    "rgbd": "generic RGB-D folders (e.g. 7-Scenes, TUM, a phone capture)",
    "mixed": "a mix of sources",
}

_PROBE_ROW = re.compile(r"^\| `(?P<name>[^`]*)` \| `(?P<digest>[0-9a-f]{16})` \|")
_PROBE_HEADER = ("| data | data sha256 (first 16) | val scenes | mIoU | overall accuracy | head |\n"
                 "| --- | --- | --- | --- | --- | --- |")


def _yes(flag) -> str:
    return "yes" if flag else "no"


def _front_matter(meta: dict) -> str:
    training = meta.get("training") or {}
    origin = (training.get("data") or {}).get("origin")
    tags = ["concerto3d", "point-cloud", "3d", "feature-extraction", "self-supervised", "indoor", "rgb-d"]
    if origin in ("synthetic", "scannet"):
        tags.append("scannet-layout" if origin == "synthetic" else "scannet")
        if origin == "synthetic":
            tags.append("synthetic-data")
    lines = ["---", "library_name: concerto3d", "tags:"] + [f"- {t}" for t in tags]
    # the weights follow the terms of the data they were trained on: no single licence id fits, so "other", named
    lines += ["license: other", "license_name: training-data-terms"]
    if origin == "scannet":
        lines.append(f"license_link: {SCANNET_TERMS_URL}")
    lines.append("---")
    return "\n".join(lines)


def _training_section(meta: dict) -> list[str]:
    training = meta.get("training") or {}
    data = training.get("data") or {}
    objective = meta.get("objective", "unknown")
    steps = meta.get("steps")
    out = ["## Training", "",
           f"- objective: `{objective}`: {_OBJECTIVES.get(objective, 'see the concerto3d documentation')}",
           f"- steps: {steps if steps is not None else 'not recorded'}",
           f"- weights: the {meta.get('weights', 'student')}'s encoders"
           + (" (the EMA teacher's point encoder)" if meta.get("weights") == "teacher" else "")]
    if data:
        splits = ", ".join(data.get("sha256_splits") or [])
        out += [f"- data: `{data.get('name', '?')}`, split `{data.get('split', '?')}`, "
                f"{data.get('scenes', '?')} scene(s)" + (f"; {_ORIGINS[data['origin']]}"
                                                         if data.get("origin") in _ORIGINS else ""),
                f"- data sha256: `{data.get('sha256', 'not recorded')}` (`concerto3d.data.digest.data_digest` over "
                f"the split list(s) {splits} and the scenes they name; over train and val it is the `data_sha256` "
                "an ablation on the same data records)"]
    else:
        out.append("- data: not recorded (a model saved outside `concerto3d train`, or before concerto3d recorded "
                   "it)")
    image = training.get("image_encoder")
    if meta.get("image_encoder") is None:
        out.append("- image encoder: none in this folder")
    elif image:
        role = "frozen, the 2D teacher the points aligned with" if image.get("frozen") else "fine-tuned from it"
        out.append(f"- image encoder: from `{image.get('path')}` ({role}); files sha256 `{image.get('sha256')}` "
                   "(`concerto3d.inference.image_encoder_digest`); its weights are in this folder")
    elif training:
        trained = "trained jointly" if objective == "joint" else "trained"
        kind = {"resnet": "a ResNet"}.get((meta.get("image_encoder") or {}).get("architecture"), "a ViT")
        out.append(f"- image encoder: {kind} {trained} from random initialisation")
    for key, label in (("seed", "seed"), ("batch_size", "crops a step"), ("concerto3d_version", "concerto3d")):
        if training.get(key) is not None:
            out.append(f"- {label}: {training[key]}")
    return out


def _input_section(meta: dict) -> list[str]:
    use = meta.get("input") or {}
    grid = float(use.get("grid_size", 0.0) or 0.0)
    position = use.get("position_feature", "xyz")
    out = ["## Input it expects", ""]
    if meta.get("point_encoder") is None:
        return out + ["No point encoder: this folder's image encoder takes RGB frames (B, 3, H, W) in [0, 1], "
                      "normalised with its `image_mean` / `image_std` (config.json), at an image size that is a "
                      "multiple of its patch size; lift its patch features onto points through correspondences."]
    out += [
        "- points: (N, 3) float, metres, gravity-aligned with z up (as `concerto3d preprocess` stores scans)",
        f"- colours: (N, 3) RGB, uint8 0-255 (or float in [0, 1]); used: {_yes(use.get('use_color', True))}",
        f"- normals: (N, 3) unit normals; used: {_yes(use.get('use_normal', True))} (absent: zeros, as a dropped "
        "normal in training; `concerto3d.inference.cloud_normals` estimates them)",
        "- grid size: " + (f"{grid:g} m (one point per cell is encoded; every point gets its cell's feature)"
                           if grid > 0 else "none (every point is encoded)"),
        "- position input: " + ("height above the cloud's lowest point (x, y left out)" if position == "height"
                                else "coordinates centred on the cloud's bounding box"),
        f"- feature channels: {use.get('feature_channels', 9)} (position 3, colour 3 scaled to [-1, 1], normal 3)",
    ]
    channels = (meta.get("point_encoder") or {}).get("out_channels")
    if channels is not None:
        out.append(f"- output: (N, {channels}) float32 features, one per input point, in input order")
    return out


def _load_section(meta: dict) -> list[str]:
    points = meta.get("point_encoder") is not None
    use = ("features = model.embed(points, colors=colors, normals=normals)  # (N, C) float32" if points
           else "patch_grid = model.image_encoder(images).patch_grid  # (B, Hp, Wp, C)")
    out = ["## How to load", "",
           "This folder alone rebuilds the model: `config.json` (architecture and input) and `model.safetensors` "
           "(weights); no code is loaded from it and nothing is downloaded.", "",
           "```python",
           "from concerto3d.inference import PretrainedModel, load_model",
           "",
           'model = load_model("path/to/this/folder")  # or PretrainedModel.from_pretrained("path/to/this/folder")',
           use,
           "```"]
    if points:
        out += ["", "From the command line: `concerto3d embed cloud.ply --model path/to/this/folder --out "
                "features.npy`."]
    return out


def _licence_section(meta: dict) -> list[str]:
    origin = ((meta.get("training") or {}).get("data") or {}).get("origin")
    out = ["## Licence", "",
           "The licence of the training data governs these weights. concerto3d (MIT) makes no claim on them beyond "
           "its own code:", "",
           "- trained on synthetic scenes made by `concerto3d synth`: the data is made by concerto3d and carries "
           "no third-party terms;",
           f"- trained on ScanNet: the ScanNet Terms of Use apply ({SCANNET_TERMS_URL}); read them before you "
           "share these weights or use them beyond research;",
           "- trained on other scans: their owners' terms apply."]
    if origin in _ORIGINS:
        out += ["", f"This model's training data, as recorded at training time: {_ORIGINS[origin]}."]
    else:
        out += ["", "The source of this model's training data was not recorded; check it before sharing."]
    return out


def model_card(meta: dict, probe_rows: list[str] | tuple[str, ...] = ()) -> str:
    """The ``README.md`` of a model folder.

    Args:
        meta: the folder's ``config.json`` as a dict (format 1 or 2; what was not recorded is said so).
        probe_rows: rows made by :func:`probe_row`; none: "not measured".
    Returns:
        the card's Markdown text, ending in a newline.
    """
    objective = meta.get("objective", "unknown")
    title = "concerto3d " + ("image encoder" if meta.get("point_encoder") is None else "point encoder")
    lines = [_front_matter(meta), "", f"# {title} ({objective} objective)", "",
             "Per-point features of indoor point clouds, learned with concerto3d (joint 2D-3D self-supervised "
             "learning after Concerto, Zhang, Wu et al., NeurIPS 2025, arXiv 2510.23607).", ""]
    lines += _training_section(meta) + [""]
    lines += ["## Evaluation", "", _probe_block(list(probe_rows)), ""]
    lines += _input_section(meta) + [""]
    lines += _load_section(meta) + [""]
    lines += _licence_section(meta)
    return "\n".join(lines) + "\n"


def _probe_block(rows: list[str]) -> str:
    if not rows:
        body = (f"{NOT_MEASURED} `concerto3d probe DATA --model THIS_FOLDER` measures it on a preprocessed dataset "
                "with train and val splits and writes its result here.")
    else:
        body = ("Linear probe (`concerto3d probe`): frozen point features, one linear layer trained on the train "
                "split, mIoU over the ScanNet-20 classes present in the val split.\n\n" + _PROBE_HEADER + "\n"
                + "\n".join(rows))
    return f"{PROBE_BEGIN}\n{body}\n{PROBE_END}"


def probe_row(data_name: str, data_sha256: str, summary: dict) -> str:
    """One row of the card's probe table from ``concerto3d probe``'s summary (``miou``, ``overall_accuracy``,
    ``scenes``, ``head``) and the probed data's name and :func:`~concerto3d.data.digest.data_digest`."""
    head = summary.get("head") or {}
    name = str(data_name).replace("`", "'").replace("|", "/")
    settings = f"{head.get('epochs', '?')} epochs, lr {head.get('lr', '?')}, seed {head.get('seed', '?')}"
    if head.get("train_points_per_scene") is not None:
        settings += f", {head['train_points_per_scene']} points a train scene"

    def number(key):
        value = summary.get(key)
        return "n/a" if value is None or value != value else f"{100 * float(value):.1f}%"

    val = (summary.get("scenes") or {}).get("val", "?")
    return (f"| `{name}` | `{data_sha256[:16]}` | {val} | {number('miou')} | {number('overall_accuracy')} | "
            f"{settings} |")


def with_probe_result(card: str, row: str) -> str | None:
    """``card`` with ``row`` in its probe block: it replaces the row of the same data digest, or is added.

    Returns:
        the new text, identical to ``card`` outside the markers; None when the card has not exactly one
        :data:`PROBE_BEGIN` ... :data:`PROBE_END` block (someone removed it: the card is theirs then).
    """
    if card.count(PROBE_BEGIN) != 1 or card.count(PROBE_END) != 1:
        return None
    start = card.index(PROBE_BEGIN)
    end = card.index(PROBE_END) + len(PROBE_END)
    if end < start:
        return None
    new = _PROBE_ROW.match(row)
    if new is None:
        raise ValueError(f"expected a row made by probe_row, got {row!r}")
    rows = [line for line in card[start:end].splitlines() if _PROBE_ROW.match(line)
            and _PROBE_ROW.match(line)["digest"] != new["digest"]]
    return card[:start] + _probe_block(rows + [row]) + card[end:]
