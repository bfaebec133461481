"""regnn: multiple appropriate facial reaction generation (REGNN, Xu et al.) on the REACT layout."""

__version__ = "0.1.0"
