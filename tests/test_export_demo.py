"""The quick start's export part (`ecg-export demo`): synthetic data -> train -> bundle -> parity.

The session's `demo_bundle` fixture runs `ecg-export demo` (and requires exit 0); these tests read what it left.
"""

import json

import pytest

from export.demo import read_results, report_lines


@pytest.mark.slow
def test_demo_runs_the_whole_chain(demo_bundle):
    data, bundle = demo_bundle
    out = bundle.parent
    r = read_results(out)
    parity = json.loads((bundle / "parity.json").read_text())
    assert r["parity_failures"] == [] and r["int8_top1_agreement"] == parity["runtimes"]["litert_int8_reference"]["top1_agreement"] >= 0.99
    assert r["tflm_identical_fraction"] == parity["tflm_identical_fraction"] == 1.0
    assert set(r["float_test_recall"]) == {"NORMAL", "MI", "ARRHYTHMIA"} and 0 < r["flatbuffer_bytes"] and 0 < r["arena_bytes"]
    assert r["bundle"] == str(bundle) and r["dataset"] == str(data)
    text = "\n".join(report_lines(r))
    assert f"TFLM arena {r['arena_bytes']:,} B" in text and f"balanced accuracy {r['float_test_balanced_accuracy']:.3f}" in text
    assert (bundle / "firmware" / "ecg_config.h").exists() and (out / "train" / "eval" / "metrics.json").exists()


def test_results_of_a_missing_run_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.json: missing"):
        read_results(tmp_path / "nothing")
