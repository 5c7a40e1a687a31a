"""notebooks/quickstart.ipynb runs end to end on tiny settings (synth -> preprocess -> train -> probe -> visualize).

The kernel is this test's own interpreter: a kernelspec written under tmp_path is put first on JUPYTER_PATH under a
name of its own, so neither a user's ``python3`` kernelspec nor a missing one in a fresh ``.venv`` can pick another
Python. The notebook's sizes come from QUICKSTART_* environment variables, which the kernel inherits.
"""

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
KERNEL = "concerto3d-test-python"

TINY = {
    "SCENES": "2", "FRAMES": "4", "COLOR_SIZE": "160x120", "DEPTH_SIZE": "80x60", "FRAME_SKIP": "1",
    "IMAGE_SIZE": "32x48", "VOXEL": "0.08", "STEPS": "10", "PROBE_EPOCHS": "2", "TILE_SIZE": "120x90",
    "TRAIN_OVERRIDES": " ".join([
        "data.max_points=1024", "data.min_points=64", "data.max_frames=2", "data.image_size=[32,48]",
        "image_encoder.image_size=[32,48]", "image_encoder.hidden_size=32", "image_encoder.num_layers=1",
        "image_encoder.num_heads=2", "point_encoder.ratios=[0.25,0.25]", "point_encoder.radii=[0.3,0.6]",
        "point_encoder.sa_channels=[16,32]", "point_encoder.global_channels=32", "point_encoder.fp_channels=[32]",
        "point_encoder.out_channels=32", "point_encoder.max_neighbors=16", "objective.proj_dim=32",
        "objective.hidden_dim=64", "objective.num_prototypes=64", "optim.warmup_steps=2", "batch_size=1",
        "device=cpu", "checkpoint_every=1000"]),
}


def own_kernel(root: Path) -> Path:
    """A kernelspec named KERNEL that starts this interpreter; returns the folder to put on JUPYTER_PATH."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "concerto3d test", "language": "python"}))
    return root


@pytest.mark.slow
def test_quickstart_notebook_runs_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(own_kernel(tmp_path / "jupyter")))
    # connection files and IPython's profile under tmp_path too: a CI home may be read-only
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for name, value in TINY.items():
        monkeypatch.setenv(f"QUICKSTART_{name}", value)
    monkeypatch.setenv("QUICKSTART_OUT", str(tmp_path / "quickstart"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, as the rest of the suite
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=280, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    out = tmp_path / "quickstart"
    assert (out / "run" / "model" / "config.json").is_file()
    probe = json.loads((out / "probe.json").read_text())
    assert 0.0 <= probe["miou"] <= 1.0
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the panel is not shown inline"
    text = "".join(o.get("text", "") for o in outputs)
    assert "finite: True" in text and "agree: True" in text
