"""The trained detector: features, pure-Python model inference, campaign grouping, training.

scikit-learn and matplotlib are imported only by the training tooling (:mod:`pkgvet.ml.export`,
:mod:`pkgvet.ml.plots`); :mod:`pkgvet.ml.forest` and :mod:`pkgvet.ml.campaigns` use the standard
library alone.
"""
