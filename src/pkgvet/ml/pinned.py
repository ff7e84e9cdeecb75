"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "1cff03daa3ee2934bc73f0b09fd9bef1e39556efb5a3b250c1eda4e77acb8826"
