"""`servicegroup demo`: a new user's first command (DESIGN.md section 1).

Starts kubesim (an in-memory API server with simulated nodes, pods and the built-in
controllers), the servicegroup controller, a wrapper and a DNS helper per NodeUnit, all in
this process, then walks through the upstream ServiceGroup documentation's examples and
prints what `kubectl get` shows at each step.

Modules: `manifests` (the examples, embedded), `tables` (kubectl's text rendering of
server-side Tables), `cluster` (the simulated cluster and the components running on it),
`steps` (the walkthrough), `command` (`run(settings)`, logging to a file, exit codes).
"""

from __future__ import annotations

from servicegroup.demo.command import run

__all__ = ["run"]
