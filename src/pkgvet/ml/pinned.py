"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "5cafed5c31c1964b8b2889362b235cc1b109242b4748cabc7dd58c3fb2c2d5de"
