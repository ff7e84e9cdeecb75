"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model file whose
hash differs is refused at load."""

MODEL_SHA256 = ""
