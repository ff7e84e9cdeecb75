"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "121650aada855f1495deedda8d15660d566f44d4a9c892c7b6c365b52c26318f"
