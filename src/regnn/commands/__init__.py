"""One module per ``regnn`` command; see :mod:`regnn.cli`."""
