"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "a470c271d0de7bedf2308d40f509ed5d5d6ff698d55838df1c2520b47338b48b"
