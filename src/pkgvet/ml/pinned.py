"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "574d1187ba63e0d945a64cd41ffb7db611d85ff6ecd744e5286917b8852c8fe4"
