"""report.html: built from results.json alone, self-contained, and working in a real browser.

The browser test opens the MiniLM study's committed results as a person would, in headless
Chromium (Debian's ``chromium``, which .ci/run and scripts/setup install), fails on any console
message of level error (a broken script included), checks what the scripts drew, and saves a
screenshot beside the page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from slimkit.html_report import page_data, render_html, write_html_report
from slimkit.results import load_results

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "docs" / "studies" / "minilm-semeval-study"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_page_carries_every_measured_model_and_both_charts() -> None:
    results = load_results(STUDY / "results.json")
    data = page_data(results)
    assert [r["label"] for r in data["rows"]] == [a.label for a in results.artifacts]
    assert [r["label"] for r in data["rows"] if r["chosen"]] == [results.selection.chosen]  # type: ignore[union-attr]
    assert [(c["x"], c["y"]) for c in data["charts"]] == [
        ("latency_ms.b1.s128", "micro_f1"),
        ("size_bytes", "micro_f1"),
    ]
    assert results.selection is not None and set(data["charts"][0]["front"]) == set(results.selection.pareto_front)
    full = next(r for r in data["rows"] if r["label"] == "full")
    assert full["recipe"][0].startswith("finetune: transformers.finetune") and len(full["recipe"]) == 8


def test_the_charts_plot_the_accuracy_the_study_chose_by() -> None:
    # As the PNG plots do: a study whose budget is about macro-F1 charts macro-F1, not micro-F1.
    results = load_results(STUDY / "results.json")
    assert results.selection is not None
    results.selection.accuracy = "macro_f1"
    assert {c["y"] for c in page_data(results)["charts"]} == {"macro_f1"}


def test_the_page_needs_no_network() -> None:
    page = render_html(load_results(STUDY / "results.json"))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page loads something from the network"
    assert "</script>" not in page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]


def _chromium(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--log-level=0",
               "--virtual-time-budget=3000", *flags, page.as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if "CONSOLE" in line]
    return [
        line for line in lines if re.search(r":(ERROR|FATAL):|Uncaught|console\.error", line) or "error" in line.lower()
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_the_report_works_in_headless_chromium(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    assert _console_errors(_chromium(broken, "--dump-dom").stderr), "console errors would go unnoticed"

    write_html_report(tmp_path, load_results(STUDY / "results.json"))
    page = tmp_path / "report.html"
    dom = _chromium(page, "--dump-dom")
    assert _console_errors(dom.stderr) == []
    rows = re.findall(r'<tr data-label="([^"]+)"', dom.stdout)
    assert len(rows) == len(load_results(STUDY / "results.json").artifacts)
    assert dom.stdout.count("<circle") >= 2 * len(rows) - 2  # both charts drew their points
    shot = tmp_path / "report.png"
    done = _chromium(page, f"--screenshot={shot}", "--window-size=1400,1100")
    assert _console_errors(done.stderr) == [] and shot.stat().st_size > 10_000
