"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model
file whose hash differs is refused at load."""

MODEL_SHA256 = "7d3c0005ed504aaa58ded14204b93c144228d8ccb121214f2d4e47f67736cabd"
