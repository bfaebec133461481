"""``python -m regnn ...``: the same as the ``regnn`` command."""

from regnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
