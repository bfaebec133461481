"""regnn: multiple appropriate facial reaction generation (REGNN, Xu et al.) on the REACT layout."""

from regnn.mkl import apply_vendor_fix

__version__ = "0.1.0"

# before anything imports torch: lets MKL use its AVX2 kernels on AMD CPUs (see regnn.mkl)
apply_vendor_fix()
