"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "b3fb48551e57c9efcdab66b962a1a6365f7582ef65105261254a33ce87e45f54"
