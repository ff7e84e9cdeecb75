"""The trained-model options shared by ``pkgvet scan`` and ``pkgvet batch``: choosing a model
file and checking it once before any scan. Kept apart from the commands so that importing one
command does not import the other."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pkgvet.config import ScanConfig

_F = TypeVar("_F", bound=Callable[..., Any])


class ModelRefused(click.ClickException):
    """The model named for the scan cannot be used (tampered, unreadable): exit code 2."""

    exit_code = 2


def model_file_options(command: _F) -> _F:
    """``--model-file`` and ``--model-sha256``: score with another model than the shipped one
    (a candidate from ``pkgvet train``), its hash checked before any scan."""
    command = click.option(
        "--model-sha256", metavar="HEX", help="Expected sha256 of --model-file."
    )(command)
    return click.option(
        "--model-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Use this model file instead of the shipped one (needs --model-sha256).",
    )(command)


def check_model(config: ScanConfig) -> ScanConfig:
    """Load the model once before scanning: a tampered or unreadable model is refused (exit 2);
    an installation without a model falls back to the rules-only verdict, with a warning."""
    if not config.use_model:
        return config
    from pkgvet.ml.model import ModelError, load_model, shipped_model_available

    if config.model_path is None and not shipped_model_available():
        click.echo("warning: no trained model installed; rules-only verdict", err=True)
        return dataclasses.replace(config, use_model=False)
    try:
        load_model(config.model_path, config.model_sha256)
    except ModelError as exc:
        raise ModelRefused(exc.diagnostics()) from exc
    return config
