"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "d9e1ebf2e86c7bd8d4eeef3f00135e4df471b2dd4466b43c256c70cd481f927e"
