"""``python -m e4e_headless``: the same as the ``e4e-run`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
