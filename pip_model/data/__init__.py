"""The data: the corpus of clean images, the paper's datasets on disk, Kornia degradations, the benchmark and the
training pairs.
"""
