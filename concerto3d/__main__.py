"""``python -m concerto3d``: the same command line as ``concerto3d`` (``torchrun -m concerto3d train ...`` uses it)."""

from concerto3d.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
