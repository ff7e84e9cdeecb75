"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "7c41fe49341f4384c34063aabbbc66cde6427bf0665789bf3127bf55b69554fb"
