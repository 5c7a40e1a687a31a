"""The real Open3D windows of ``visualize --interactive`` under a virtual display (Xvfb), driven with xdotool: keys
3, 4, P, shift + clicks in the picking window, Q. Skipped where xvfb-run or xdotool is missing, and unless
CONCERTO3D_WINDOW_TESTS=1. A key pressed before a window listens is lost, so P and Q are pressed again until the next
window shows (or the command ends). The pick must land on the floor: the ceiling is cut away.

The command runs in a subprocess (its own display); the trained model is the stand-in of
test_visualize_command.py, installed by a small launcher script.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [
    pytest.mark.skipif(not (shutil.which("xvfb-run") and shutil.which("xdotool")), reason="needs xvfb-run and xdotool"),
    pytest.mark.skipif(os.environ.get("CONCERTO3D_WINDOW_TESTS") != "1",
                       reason="opt in with CONCERTO3D_WINDOW_TESTS=1 (about 20 s; about 1 run in 8 failed to open "
                       "the picking window on a loaded machine)"),
]

LAUNCHER = """
import sys, types
import numpy as np
import torch
class StandIn:
    def __init__(self):
        self.point_encoder = torch.nn.Linear(3, 3)
    def embed(self, points, colors=None, normals=None):
        return np.concatenate([points, np.sin(3 * points), colors / 255.0], axis=1).astype(np.float32)
fake = types.ModuleType("concerto3d.inference")
fake.load_model = lambda run, device="cpu": StandIn()
sys.modules["concerto3d.inference"] = fake
from concerto3d.cli import main
sys.exit(main(sys.argv[1:]))
"""

DRIVER = r"""
# find a window by title (up to 120 s); press KEY in it until a window titled NEXT shows or the command ends
find() { for i in $(seq 120); do W=$(xdotool search --name "$1" 2>/dev/null | head -1); [ -n "$W" ] && break
  sleep 1; done; echo $W; }
press_until() { for i in $(seq 30); do xdotool windowfocus $1 2>/dev/null; xdotool key $2; sleep 2
  kill -0 $PID 2>/dev/null || return 0; [ -n "$(xdotool search --name "$3" 2>/dev/null)" ] && return 0; done
  return 1; }
"$PYTHON" launcher.py visualize scene --model RUN --interactive --device cpu > out.log 2>&1 &
PID=$!
W=$(find "concerto3d: 1"); [ -n "$W" ] || { kill $PID; exit 3; }
xdotool windowfocus --sync $W; xdotool mousemove --window $W 640 400
for k in 3 4; do xdotool key $k; sleep 0.5; done
press_until $W p "left click the query" || { kill $PID; exit 4; }
E=$(find "left click the query"); sleep 2; xdotool windowfocus --sync $E
for xy in "640 400" "600 380" "680 420"; do xdotool mousemove --window $E $xy; sleep 0.3
  xdotool keydown shift click 1 keyup shift; sleep 0.5; done
press_until $E q "concerto3d: 1" || { kill $PID; exit 5; }
W=$(find "concerto3d: 1"); press_until $W q "no such window" || { kill $PID; exit 6; }
wait $PID
"""


def room(path, n_side=60):
    """A dense 2 x 2 m floor (normals up) under a ceiling (normals down) at 1 m: the ceiling is cut away."""
    x, y = np.meshgrid(np.linspace(-1, 1, n_side), np.linspace(-1, 1, n_side))
    floor = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    coord = np.concatenate([floor, floor + [0, 0, 1.0]]).astype(np.float32)
    normal = np.concatenate([np.tile([0, 0, 1.0], (len(floor), 1)), np.tile([0, 0, -1.0], (len(floor), 1))])
    path.mkdir()
    np.save(path / "coord.npy", coord)
    np.save(path / "color.npy", (np.abs(coord) * 200).astype(np.uint8))
    np.save(path / "normal.npy", normal.astype(np.float32))
    np.save(path / "segment20.npy", np.where(coord[:, 2] > 0.5, 1, 0).astype(np.int16))
    return coord


def test_real_windows_switch_colourings_and_pick_a_query(tmp_path):
    coord = room(tmp_path / "scene")
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    (tmp_path / "driver.sh").write_text(DRIVER)
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", "bash", "driver.sh"], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    log = (tmp_path / "out.log").read_text()
    assert done.returncode == 0, f"driver exit {done.returncode}\n{done.stderr[-2000:]}\n{log[-2000:]}"
    queries = [int(line.split()[-1]) for line in log.splitlines() if line.startswith("query point:")]
    assert len(queries) == 1, log
    assert coord[queries[0], 2] < 0.5  # a floor point: the ceiling was cut away when picking
