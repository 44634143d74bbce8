"""Injected worker deaths, for the tests of the similarity job's fault handling.

``EMBCOMPARE_FAULT_TILE=pass1:0-300x300-600`` (a unit's phase and ranges, see
``checkpoint.unit_name``): the process running a task that covers that tile exits at once, as a
worker killed mid-tile does (OOM killer, spot node). With ``EMBCOMPARE_FAULT_ONCE=<path>`` it
dies only while no file is at ``path`` (it creates it first), so its replacement succeeds; without
it, every attempt dies. Unset (always, outside tests): nothing happens.
"""
from __future__ import annotations

import os

FAULT_TILE = "EMBCOMPARE_FAULT_TILE"
FAULT_ONCE = "EMBCOMPARE_FAULT_ONCE"
ENV_VARS = (FAULT_TILE, FAULT_ONCE)


def maybe_die(units) -> None:
    target = os.environ.get(FAULT_TILE)
    if not target:
        return
    if not any(f"{u.split(':')[0]}:{u.split(':')[-1]}" == target for u in units):
        return
    once = os.environ.get(FAULT_ONCE)
    if once:
        try:
            with open(once, "x"):
                pass
        except FileExistsError:
            return
    os._exit(17)
