"""`reidstream doctor`: check that this machine can run reidstream, and say what it would use.

    reidstream doctor [--config SITE.yaml] [KEY=VALUE ...]

The checks are `pipeline.monitoring.doctor`'s. With a site's configuration it also opens each
camera (one frame), loads each model file the configuration names (the detector's weights, the
ReID model) as the job would, and requires the broker when the site publishes to Kafka, with the
configuration's TLS/SASL options. Exit status 1 when a required check fails (one line each);
optional ones (CUDA, TensorRT, a broker nothing publishes to) only warn.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.cli.common import add_config_arguments, load_from_args, setup_logging

if TYPE_CHECKING:
    from pipeline.settings import ReidstreamConfig

__all__ = ["add_arguments", "model_loaders", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Exercise every component reidstream depends on and report what this machine "
        "would use; with --config SITE.yaml, also open each camera, load each model file and "
        "reach the broker the site publishes to. Exits 1 when a required check fails; optional "
        "ones only warn."
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.monitoring.doctor import run_checks, site_checks

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    checks = run_checks(
        device=cfg.device,
        kafka_options=cfg.kafka.client_options(),
        kafka_required=args.config is not None and "kafka" in cfg.output.sinks,
    )
    checks += site_checks(
        cameras=[(c.id, c.uri) for c in cfg.cameras],
        open_timeout_s=cfg.sources.open_timeout_s,
        models=model_loaders(cfg),
    )
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{check.status:>4}  {check.name:<{width}}  {check.detail}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(
        f"\n{len(checks)} checks: {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    return 1 if failed else 0


def model_loaders(cfg: ReidstreamConfig) -> dict[str, Callable[[], str]]:
    """The models a site's job would load, each as a loader that loads it as the job does
    (`pipeline.assemble`), releases it and describes it: the detector when cameras are
    configured or it names weights, the ReID model when cameras are configured or a model is
    named (not the bundled one alone)."""
    loaders: dict[str, Callable[[], str]] = {}
    if cfg.cameras or cfg.detector.weights is not None:
        loaders["detector"] = lambda: _load_detector(cfg)
    if cfg.cameras or not cfg.reid.uses_bundled_model:
        loaders["reid model"] = lambda: _load_engine(cfg)
    return loaders


def _load_detector(cfg: ReidstreamConfig) -> str:
    from pipeline.assemble import build_detector, resolve_device

    detector = build_detector(cfg, resolve_device(cfg.device))
    if detector is not None:
        detector.close()
    where = f" ({cfg.detector.weights})" if cfg.detector.weights is not None else ""
    return f"{cfg.detector.name}{where} loads"


def _load_engine(cfg: ReidstreamConfig) -> str:
    from pipeline.assemble import build_engine, model_label, resolve_device

    build_engine(cfg, resolve_device(cfg.device)).close()
    return f"{cfg.reid.engine} engine, {model_label(cfg)} loads"
