"""The canonical face every stage agrees on. No imports, so that any module can use it (codec without
loading dlib, the numpy-only identity layer without loading torch)."""

CROP_SIZE = 128  # side of the aligned crop every model of this release codes
DESCRIPTOR_DIM = 128  # length of the recognizer's descriptor, the identity layer's input and output
