"""The fuzz corpus (tests/fuzz_corpus.py): over a thousand damaged .nic files (amortized and overfit) and weights files, decoded
under a memory limit, give only nicodec's own errors, and nothing allocates more than it should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit and its measure need Linux")
def test_a_thousand_damaged_files_give_only_nicodec_errors_within_a_memory_limit():
    result = subprocess.run([sys.executable, str(HERE / "fuzz_corpus.py"), "--limit-mb", "1024"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["cases"] >= 1000
    assert report["failure_count"] == 0, report["failures"]
    assert report["outcomes"]["files: decoded"] > 0 and report["outcomes"]["weights: decoded"] > 0  # not all refused
    assert report["peak_rss_growth_mb"] < 512, report  # far below the 1 GiB the process may map; a bomb takes GBs
    assert report["seconds"] < 120, report
