"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "ca8861238cf1d4318cf9d1b2949cb75a0d86bd3008aa91310cfdff8b982cf7a3"
