"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "da96ec88e4985597c7fc853968f934b797c1eea8e3294fbe4789d13b1059b7f4"
