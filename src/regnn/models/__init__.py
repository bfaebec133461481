"""Models: the REGNN framework, its motor processors and the paper's comparison systems."""
