"""Coding: frequency tables and symbols -> bits, in exact integers (numpy and numba; no torch, no engine).

versions: the coder's id, versions and parameters as stream headers carry them; rangecoder: the range coder
(spec/coder.md); mixer: the online models of a frame and the mixer that joins them with the model's table
(spec/mixer.md).
"""
