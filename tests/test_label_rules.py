"""Label rules on hand-written annotations, header comments and scp codes."""

import numpy as np
import pytest

from pipeline.data.label_rules import (
    PtbxlStatements,
    arrhythmia_window_mask,
    header_field,
    is_abnormal_beat,
    is_beat,
    parse_scp_codes,
    ptb_label,
    ptbxl_label,
    stage1_label,
    stage2_label,
)


def test_beat_symbols():
    assert all(is_beat(s) and not is_abnormal_beat(s) for s in "NLRej")
    assert all(is_beat(s) and is_abnormal_beat(s) for s in ["V", "A", "F", "/", "f", "Q", "a", "J", "S", "E"])
    assert not any(is_beat(s) or is_abnormal_beat(s) for s in ["+", "~", "|", '"', "x", "!", "[", "]"])


def test_arrhythmia_mask_counts_and_ratio():
    # 360 Hz annotations; windows of 2500 samples at 250 Hz = 3600 input samples.
    fs_in, fs_out, window = 360.0, 250.0, 2500
    samples, symbols = [], []
    for w, abnormal in enumerate([0, 1, 2, 5]):  # four windows with 0, 1, 2, 5 PVCs among 10 beats
        for b in range(10):
            samples.append(w * 3600 + 100 + b * 340)
            symbols.append("V" if b < abnormal else "N")
        samples.append(w * 3600 + 50)
        symbols.append("+")  # rhythm change: ignored
    starts = np.arange(4) * window
    s = np.array(samples)
    assert arrhythmia_window_mask(s, symbols, fs_in, fs_out, starts, window).tolist() == [False, True, True, True]
    assert arrhythmia_window_mask(s, symbols, fs_in, fs_out, starts, window, min_count=2).tolist() == [False, False, True, True]
    assert arrhythmia_window_mask(s, symbols, fs_in, fs_out, starts, window, min_count=1, min_ratio=0.3).tolist() == [False, False, False, True]


def test_arrhythmia_window_is_half_open():
    # a PVC at exactly the next window's first sample belongs to the next window only
    mask = arrhythmia_window_mask(np.array([2500, 2600]), ["V", "N"], 250.0, 250.0, np.array([0, 2500]), 2500)
    assert mask.tolist() == [False, True]


@pytest.mark.parametrize(
    "comments,label",
    [
        (["age: 81", "sex: female", "Reason for admission: Myocardial infarction"], "MI"),
        (["Reason for admission: Healthy control", "Acute infarction (localization): no"], "NORMAL"),
        (["Reason for admission: Cardiomyopathy", "Additional diagnoses: old myocardial infarction"], None),
        (["no reason given"], None),
    ],
)
def test_ptb_label(comments, label):
    assert ptb_label(comments) == label


def test_header_field():
    assert header_field(["label: MI", "patient: syn_mi_003"], "patient") == "syn_mi_003"
    assert header_field(["label: MI"], "patient") is None


@pytest.mark.parametrize(
    "classes,rhythms,loose,semi,strict",
    [
        ({"NORM"}, {"SR"}, "NORMAL", "NORMAL", "NORMAL"),
        ({"NORM"}, set(), "NORMAL", "NORMAL", "NORMAL"),
        ({"MI"}, {"SR"}, "MI", "MI", "MI"),
        ({"MI", "STTC"}, {"SR"}, "MI", None, None),
        ({"MI"}, {"AFIB"}, "MI", None, None),
        ({"NORM"}, {"AFIB"}, "ARRHYTHMIA", "ARRHYTHMIA", "ARRHYTHMIA"),
        (set(), {"AFIB"}, "ARRHYTHMIA", "ARRHYTHMIA", None),
        ({"CD"}, {"STACH", "SR"}, "ARRHYTHMIA", None, None),
        ({"NORM", "HYP"}, {"SR"}, None, None, None),
        ({"HYP"}, {"SR"}, None, None, None),
        (set(), set(), None, None, None),
    ],
)
def test_ptbxl_modes(classes, rhythms, loose, semi, strict):
    assert ptbxl_label(classes, rhythms, "loose") == loose
    assert ptbxl_label(classes, rhythms, "semi") == semi
    assert ptbxl_label(classes, rhythms, "strict") == strict


@pytest.mark.parametrize(
    "classes,rhythms,screen",
    [
        ({"NORM"}, {"SR"}, "NORMAL"),
        ({"NORM", "HYP"}, {"SR"}, "NORMAL"),  # left out by loose
        ({"STTC"}, {"SR"}, "NORMAL"),
        ({"CD", "HYP"}, set(), "NORMAL"),
        ({"STTC", "MI"}, {"SR"}, "MI"),
        ({"STTC"}, {"AFIB"}, "ARRHYTHMIA"),
        ({"MI"}, {"SBRAD"}, "MI"),
        (set(), {"SR"}, None),  # no diagnostic statement at all: still left out
        (set(), set(), None),
    ],
)
def test_ptbxl_screen_mode_counts_other_sinus_findings_as_normal(classes, rhythms, screen):
    assert ptbxl_label(classes, rhythms, "screen") == screen
    loose = ptbxl_label(classes, rhythms, "loose")
    assert loose is None or loose == screen  # screen only adds records, never relabels loose ones


def test_ptbxl_unknown_mode():
    with pytest.raises(ValueError, match="unknown label mode"):
        ptbxl_label({"NORM"}, set(), "purest")


def test_two_stage_rules():
    assert stage1_label({"SR"}) == "SINUS"
    assert stage1_label({"AFIB", "SR"}) == "ARRHYTHMIA"
    assert stage1_label(set()) == "SINUS"
    assert stage1_label(set(), assume_sinus_if_missing=False) is None
    assert stage2_label({"MI"}, {"SR"}) == "MI"
    assert stage2_label({"NORM"}, set()) == "NORMAL"
    assert stage2_label({"MI"}, {"AFIB"}) is None
    assert stage2_label({"MI", "NORM"}, {"SR"}) is None


def test_statements_join(tmp_path):
    csv = tmp_path / "scp_statements.csv"
    csv.write_text(
        ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
        "NORM,normal ECG,1.0,,,NORM,NORM\n"
        "IMI,inferior MI,1.0,,,MI,IMI\n"
        "SR,sinus rhythm,,,1.0,,\n"
        "AFIB,atrial fibrillation,,,1.0,,\n"
        "LVOLT,low voltage,,1.0,,,\n"
    )
    st = PtbxlStatements.read(csv)
    classes, rhythms = st.classes_and_rhythms(parse_scp_codes("{'IMI': 15.0, 'LVOLT': 0.0, 'SR': 0.0}"))
    assert classes == {"MI"} and rhythms == {"SR"}
    assert st.diagnostic_subclass == {"NORM": "NORM", "IMI": "IMI"}


@pytest.mark.parametrize(
    "codes, default, ectopic",
    [
        ("{'NORM': 100.0, 'PVC': 0.0, 'SR': 0.0}", "NORMAL", "ARRHYTHMIA"),  # a premature beat in sinus rhythm
        ("{'LVOLT': 0.0, 'PAC': 0.0, 'SR': 0.0}", None, "ARRHYTHMIA"),  # no class: left out, unless the beat counts
        ("{'IMI': 50.0, 'PVC': 0.0, 'SR': 0.0}", "MI", "MI"),  # MI still wins
        ("{'NORM': 100.0, 'SR': 0.0}", "NORMAL", "NORMAL"),
    ],
)
def test_ectopic_beats_as_arrhythmia(tmp_path, codes, default, ectopic):
    from pipeline.sources.ptbxl import record_label

    st = PtbxlStatements({"NORM": "NORM", "IMI": "MI"}, {"SR", "AFIB"})
    assert record_label(st, parse_scp_codes(codes), "loose") == default
    assert record_label(st, parse_scp_codes(codes), "loose", ectopic=True) == ectopic


@pytest.mark.parametrize("bad", ["{'NORM': ", "['NORM']", "NORM=100"])
def test_parse_scp_codes_rejects_malformed(bad):
    with pytest.raises(ValueError, match="scp_codes"):
        parse_scp_codes(bad)
