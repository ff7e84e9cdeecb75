"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "115ed2ed993aa47435547a1c7f0d20c79959420b7cef317356e5792dd53af4ac"
