"""What an operator watches and checks: the Prometheus metrics (declared once, in `metrics`),
the /metrics + /healthz endpoint, and the machine checks of `reidstream doctor`."""

from __future__ import annotations
