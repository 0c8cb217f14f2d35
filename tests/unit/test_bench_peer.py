"""The pure parts of bench/bench_peer.py: reading each benchmark's report into a row, medians over
interleaved runs, the ratio table, and the checkpoint size."""

from __future__ import annotations

import pytest

from bench.bench_peer import (
    Row,
    checkpoint_size,
    medians,
    ratio_table,
    row_from_e2e,
    row_from_peer_load,
    row_from_sealtrail_bench,
)

PEER_LOAD = {"writers": 3000, "seconds": 15.2, "accepted": 150000, "accepted_per_s": 9868.4,
             "ack_to_checkpoint_s": {"p50": 0.56, "p99": 1.2, "max": 1.4}, "request_s": {"p50": 0.3, "p99": 0.9}}
SEALTRAIL_BENCH = {"accepted_per_s": 5100, "ack_to_checkpoint_s": {"p50": 0.85, "p99": 1.45, "max": 2.0},
                   "request_s": {"p50": 0.1, "p99": 0.2, "max": 0.3}, "server_cpu_us_per_event": 200}
E2E = {"result": {"accepted_per_s": 15000, "ack_to_checkpoint_s": {"p50": 1.3, "p99": 2.5, "max": 3.0},
                  "cpu_us_per_event": {"ingest": 50.0, "ledger": 29.0, "kafka": 14.0, "postgres": 35.0,
                                       "driver": 40.0, "machine_busy": 300.0, "other": 132.0}}}


def test_rows_read_each_report() -> None:
    """Each report's figures land in the same units: the posix server's CPU per accepted leaf, the
    embedded server's CPU per event, and the stack's CPU summed over its four server processes (not
    the load driver, not the rest of the machine); the report itself is kept with the row."""
    tessera = row_from_peer_load("tessera", PEER_LOAD, server_cpu_s=13.5)
    assert tessera.cpu_us_per_entry == pytest.approx(90.0)
    assert tessera == Row("tessera", 9868.4, 0.56, 1.2, 0.9, tessera.cpu_us_per_entry)
    assert row_from_sealtrail_bench("embedded-500", SEALTRAIL_BENCH) == Row("embedded-500", 5100, 0.85, 1.45, 0.2, 200)
    assert row_from_e2e("stack-500", E2E) == Row("stack-500", 15000, 1.3, 2.5, None, 128.0)
    assert row_from_peer_load("tessera", PEER_LOAD, server_cpu_s=None).cpu_us_per_entry is None
    assert row_from_e2e("stack-500", E2E).details == E2E["result"]


def test_medians_per_leg_in_first_seen_order() -> None:
    """Runs of the legs interleaved round by round give one row per leg, each figure the median of
    its runs, missing figures skipped."""
    runs = [Row("tessera", 9000, 0.5, 1.2, None, 90), Row("embedded-1", 400, 0.3, 0.6, 0.1, None),
            Row("tessera", 12000, 0.6, 1.0, None, 80), Row("embedded-1", 600, 0.4, 0.5, 0.3, 2000),
            Row("tessera", 10000, 0.7, 1.1, None, 100)]
    tessera, embedded = medians(runs)
    assert tessera == Row("tessera", 10000, 0.6, 1.1, None, 90)
    assert embedded.request_p99_s == pytest.approx(0.2)
    assert embedded == Row("embedded-1", 500, 0.35, 0.55, embedded.request_p99_s, 2000)


def test_ratio_table_divides_by_the_base_leg() -> None:
    """Every figure is printed with its ratio to the base leg; a figure missing on either side
    prints as a dash."""
    table = ratio_table([Row("tessera", 10000, 0.5, 1.0, None, 90), Row("stack-500", 15000, 1.25, 2.5, 0.2, 135)],
                        "tessera")
    head, rule, base, stack = table.split("\n")
    assert head.split()[:3] == ["leg", "accepted/s", "ratio"] and set(rule) == {"-"}
    assert base.split() == ["tessera", "10,000", "1.00x", "0.50", "1.00x", "1.00", "1.00x", "-", "-", "90", "1.00x"]
    assert stack.split() == ["stack-500", "15,000", "1.50x", "1.25", "2.50x", "2.50", "2.50x", "200.0", "-", "135",
                             "1.50x"]


def test_checkpoint_size() -> None:
    """The size is the second line of a checkpoint; anything else is refused."""
    assert checkpoint_size("example.com/log\n12345\nq6uvdU3a9FE0sIA9DObJ/Mt2HHGrbrOBRcHUv6nhvkk=\n\n— x y\n") == 12345
    for bad in ("", "origin\n", "origin\nten\nroot\n"):
        with pytest.raises(ValueError):
            checkpoint_size(bad)
