"""The runs layer: the run directory format (:mod:`probssl.runs.format`), where a run came
from (:mod:`probssl.runs.provenance`) and the one record of an evaluated run
(:mod:`probssl.runs.result`).

The function ``provenance`` is not re-exported: ``probssl.runs.provenance`` stays the module."""

from probssl.runs.format import (
    CONFIG_FILE,
    EVAL_FILE,
    META_FILE,
    METRICS_FILE,
    RESULT_FILE,
    LoadedRun,
    ResolvedRun,
    load_run,
    read_metrics,
    read_run_config,
    write_json_atomic,
    write_run_files,
    write_text_file,
)
from probssl.runs.provenance import array_hash, git_state, package_versions
from probssl.runs.result import RunResult

__all__ = ["CONFIG_FILE", "EVAL_FILE", "META_FILE", "METRICS_FILE", "RESULT_FILE", "LoadedRun",
           "ResolvedRun", "RunResult", "array_hash", "git_state", "load_run",
           "package_versions", "read_metrics", "read_run_config",
           "write_json_atomic", "write_run_files", "write_text_file"]
