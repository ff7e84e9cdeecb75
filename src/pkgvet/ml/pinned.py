"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "e1dc7d5d3d941c209f23a90c65dc59469b35cb11d98b8947a844f380f57152d5"
