"""Per-rule time table from Snakemake's benchmark files."""

from __future__ import annotations

import pytest

from faulttune.io import DataError
from faulttune.timings import format_table, per_rule, read_jobs

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")


def test_rules_are_summed_and_ranked_by_time(tmp_path):
    write(tmp_path / "train" / "sft.tsv", 120.0, 900.5)
    write(tmp_path / "train" / "cct.tsv", 180.0, 1500.0)
    write(tmp_path / "generate" / "sft" / "heldout.tsv", 30.0, "-")
    write(tmp_path / "report.tsv", 6.0, 300.0)
    rules = per_rule(read_jobs(tmp_path))
    assert [(r.rule, r.jobs, r.seconds) for r in rules] == [
        ("train", 2, 300.0), ("generate", 1, 30.0), ("report", 1, 6.0)]
    assert (rules[0].slowest_job, rules[0].max_rss_mb) == ("cct", 1500.0)
    assert (rules[1].slowest_job, rules[1].max_rss_mb) == ("sft/heldout", None)
    table = format_table(rules)
    assert table.splitlines()[1].split()[:3] == ["train", "2", "5.0"]
    assert table.splitlines()[-1].split() == ["all", "jobs", "4", "5.6"]


def test_a_long_job_name_keeps_the_columns_apart(tmp_path):
    name = "fgit~lambda=3.0/humaneval-split-heldout-with-a-long-suffix"
    write(tmp_path / "generate" / f"{name}.tsv", 36.0, 1328.0)
    row = format_table(per_rule(read_jobs(tmp_path))).splitlines()[1]
    assert row.split() == ["generate", "1", "0.6", name, "(0.6)", "1328"]


def test_a_file_that_is_not_a_benchmark_is_named(tmp_path):
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="x.tsv: not a Snakemake benchmark file"):
        read_jobs(tmp_path)
