"""CLI of the simulated home.

    python -m simhome history --days N --out FILE.csv [--seed S] [--start 2022-01-01]
    python -m simhome topology              # the MQTT topology as JSON
    python -m simhome live --port 1883 [--speed 60]   # stream to a broker until Ctrl-C

Bad input: one line on stderr naming the option and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simhome.layout import DEFAULT_TIMEZONE, topology

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simhome", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("history", help="write simulated history (CSV + sidecar)")
    h.add_argument("--days", type=int, required=True, help="number of local days")
    h.add_argument("--out", required=True, help="output CSV path (sidecar written next to it)")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--start", default="2022-01-01", help="first local day, YYYY-MM-DD")
    h.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    h.add_argument("--step-seconds", type=float, default=60.0)
    h.add_argument("--occupants", type=int, default=1)
    sub.add_parser("topology", help="print the sensors and devices (topics, fields, channels) as JSON")
    lv = sub.add_parser("live", help="publish the live Zigbee2MQTT-style stream to a broker")
    lv.add_argument("--host", default="127.0.0.1")
    lv.add_argument("--port", type=int, default=1883)
    lv.add_argument("--speed", type=float, default=60.0, help="sim seconds per real second")
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--start", default=None, help="sim start (ISO, local); default now")
    lv.add_argument("--no-manual", action="store_true", help="the person never operates devices unasked")
    return p


def _bad(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _history(a: argparse.Namespace) -> int:
    from simhome.history import parse_start, write_history

    if a.days < 1:
        return _bad(f"--days must be >= 1 (got {a.days})")
    if a.step_seconds <= 0 or a.step_seconds > 3600:
        return _bad(f"--step-seconds must be in (0, 3600] (got {a.step_seconds})")
    if a.occupants < 1:
        return _bad(f"--occupants must be >= 1 (got {a.occupants})")
    try:
        ZoneInfo(a.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _bad(f"--timezone {a.timezone!r} is not an IANA zone name (e.g. Europe/Brussels)")
    try:
        start = parse_start(a.start, a.timezone)
    except ValueError:
        return _bad(f"--start {a.start!r} is not a date: use YYYY-MM-DD (e.g. 2022-01-01)")
    t0 = time.perf_counter()
    try:
        path = write_history(
            a.out, a.days, a.seed, start, a.timezone, a.step_seconds, n_occupants=a.occupants
        )
    except OSError as e:
        return _bad(f"cannot write --out {a.out!r}: {e.strerror or e}")
    print(f"wrote {path} and {path}.sidecar.json ({a.days} days) in {time.perf_counter() - t0:.1f} s")
    return 0


def _live(a: argparse.Namespace) -> int:
    import datetime as dt

    from simhome.driver import SimHomeDriver
    from simhome.history import parse_start

    tz = ZoneInfo(DEFAULT_TIMEZONE)
    try:
        start = parse_start(a.start, DEFAULT_TIMEZONE) if a.start else dt.datetime.now(tz)
    except ValueError:
        return _bad(f"--start {a.start!r} is not an ISO date/time")
    if a.speed <= 0:
        return _bad(f"--speed must be > 0 (got {a.speed})")
    drv = SimHomeDriver(
        a.host, a.port, speed=a.speed, seed=a.seed, start=start, manual_operation=not a.no_manual
    )
    drv.start()
    try:
        while True:
            time.sleep(10)
            print(json.dumps(drv.stats()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        drv.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        a = _parser().parse_args(argv)
    except SystemExit as e:  # argparse prints its own one-line usage error
        return int(e.code or 0)
    if a.cmd == "history":
        return _history(a)
    if a.cmd == "topology":
        print(json.dumps(dataclasses.asdict(topology()), indent=2, ensure_ascii=False))
        return 0
    return _live(a)


if __name__ == "__main__":
    sys.exit(main())
