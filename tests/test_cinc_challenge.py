"""`ecg-pipeline prepare cinc`: the challenge's SNOMED CT codes labelled by PTB-XL's rule, HR records as PTB-XL."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest
import wfdb
from conftest import ecg_like, write_record

from pipeline.sources.build import BuildError, cinc_plans
from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from pipeline.data.label_rules import (
    LABEL_MODES,
    SNOMED_CODES,
    PtbxlStatements,
    UnknownSnomedCode,
    parse_dx,
    parse_scp_codes,
    snomed_classes_and_rhythms,
    snomed_label,
)
from pipeline.sources.ptbxl import record_label
from pipeline.data.splits import ptbxl_fold_split

SR, AF, STACH, MI, LAD, LQRSV, NSSTTA, TAB, PAC, LVH = (
    "426783006", "164889003", "427084000", "164865005", "39732003", "251146004", "428750005", "164934002", "284470004", "164873001",
)  # fmt: skip


@pytest.mark.parametrize(
    "codes,mode,ectopic,expected",
    [
        ([MI, AF, SR], "loose", False, "MI"),  # MI wins
        ([MI, AF, SR], "strict", False, None),  # strict: MI only on sinus rhythm
        ([MI, SR], "strict", False, "MI"),  # sinus rhythm is NORM only when nothing else has a superclass
        ([AF], "loose", False, "ARRHYTHMIA"),
        ([AF], "semi", False, "ARRHYTHMIA"),
        ([AF], "strict", False, None),
        ([STACH], "loose", False, "ARRHYTHMIA"),  # sinus tachycardia is a rhythm other than SR
        ([SR, STACH], "strict", False, "ARRHYTHMIA"),
        ([SR], "strict", False, "NORMAL"),
        ([SR, LAD, LQRSV, TAB], "loose", False, "NORMAL"),  # axis, voltage and T-wave form codes neither make nor prevent a label
        ([LAD], "loose", False, None),
        ([NSSTTA], "loose", False, None),  # STTC only: left out
        ([SR, NSSTTA], "loose", False, None),
        ([SR, NSSTTA], "screen", False, "NORMAL"),
        ([SR, LVH], "strict", False, None),
        ([SR, PAC], "loose", False, "NORMAL"),
        ([SR, PAC], "loose", True, "ARRHYTHMIA"),  # --ectopic-as-arrhythmia
    ],
)
def test_snomed_label_on_hand_made_codes(codes, mode, ectopic, expected):
    assert snomed_label(codes, mode, ectopic) == expected


def test_snomed_mapping_feeds_ptbxl_classes_and_rhythms():
    assert snomed_classes_and_rhythms([SR, "59118001", AF]) == ({"CD"}, {"SR", "AFIB"})
    assert snomed_classes_and_rhythms([SR]) == ({"NORM"}, {"SR"})
    assert snomed_classes_and_rhythms(["17338001", "63593006"], ectopic=True) == (set(), {"PVC", "PAC"})
    kinds = {m if not m.startswith(("rhythm:", "ectopic:")) else m.split(":")[0] for _, m in SNOMED_CODES.values()}
    assert kinds == {"", "MI", "STTC", "CD", "HYP", "rhythm", "ectopic"}  # NORM comes from sinus rhythm alone
    with pytest.raises(UnknownSnomedCode, match=r"\['999999'\]"):
        snomed_label([SR, "999999"], "loose")


@pytest.mark.realdata
def test_ptbxl_records_get_ptbxl_labels(shared_data):
    sample, ptbxl = shared_data / "cinc2021_sample", shared_data / "ptbxl"
    statements = PtbxlStatements.read(ptbxl / "scp_statements.csv")
    with open(ptbxl / "ptbxl_database.csv") as f:
        scp = {int(r["ecg_id"]): parse_scp_codes(r["scp_codes"]) for r in csv.DictReader(f) if 6000 <= int(r["ecg_id"]) <= 6009}
    seen = Counter()
    for ecg, codes in scp.items():
        dx = parse_dx(wfdb.rdheader(str(sample / f"HR{ecg:05d}")).comments)
        for mode in LABEL_MODES:
            for ectopic in (False, True):
                want = record_label(statements, codes, mode, True, ectopic)
                assert snomed_label(dx, mode, ectopic) == want, (ecg, mode, ectopic, dx, codes)
                seen[want] += 1
    assert len(scp) == 10 and seen["NORMAL"] and seen["ARRHYTHMIA"] and seen[None]  # the ten exercise all three outcomes


def _metadata_only(shared_data: Path, tmp_path: Path) -> Path:
    """A PTB-XL root holding only its metadata (links to the shared files, nothing copied)."""
    meta = tmp_path / "ptbxl_meta"
    meta.mkdir()
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        (meta / name).symlink_to(shared_data / "ptbxl" / name)
    return meta


def _run(*argv: str) -> int:
    return main(["prepare", "cinc", *argv, "--jobs", "1", "--no-progress"])


@pytest.mark.realdata
def test_build_the_whole_sample(shared_data, tmp_path):
    meta = _metadata_only(shared_data, tmp_path)
    out = tmp_path / "cinc"
    assert _run("--ptbxl-dir", str(meta), "--source-dir", str(shared_data / "cinc2021_sample"), "--out", str(out)) == 0
    ds = load_dataset(out)
    labels = {r: ds.label_names[y] for r, y in zip(ds.record.tolist(), ds.y.tolist())}
    assert len(labels) == len(ds) == 43  # 10 s records: one window each
    assert Counter(labels.values()) == {"NORMAL": 12, "ARRHYTHMIA": 31}
    by_source = Counter((r.split(":")[0], r.split(":")[1][:2], lab) for r, lab in labels.items())
    assert by_source == {
        ("ptbxl", "60", "NORMAL"): 7, ("ptbxl", "60", "ARRHYTHMIA"): 2,
        ("cinc", "E0", "NORMAL"): 5, ("cinc", "E0", "ARRHYTHMIA"): 10, ("cinc", "JS", "ARRHYTHMIA"): 19,
    }  # fmt: skip
    assert ds.meta["skipped"]["excluded_by_label_rule"] == {"cinc: SNOMED CT codes give no label under label mode loose": 7}
    # HR records keep their PTB-XL identity: patient and strat_fold split from ptbxl_database.csv
    with open(shared_data / "ptbxl" / "ptbxl_database.csv") as f:
        rows = {int(r["ecg_id"]): r for r in csv.DictReader(f) if 6000 <= int(r["ecg_id"]) <= 6009}
    patient, split = dict(zip(ds.record.tolist(), ds.patient.tolist())), dict(zip(ds.record.tolist(), ds.split.tolist()))
    hr = sorted(r for r in labels if r.startswith("ptbxl:"))
    assert hr == [f"ptbxl:{e}" for e in range(6000, 6010) if e != 6001]  # 6001 (NST_ only) is left out
    for r in hr:
        row = rows[int(r.split(":")[1])]
        assert patient[r] == f"ptbxl:{int(float(row['patient_id']))}" and split[r] == ptbxl_fold_split(int(row["strat_fold"]))
    assert split["ptbxl:6000"] == "test" and patient["ptbxl:6000"] == "ptbxl:5028"
    # Georgia and Ningbo: one record, one patient, a seeded stratified split
    others = sorted(r for r in labels if r.startswith("cinc:"))
    assert others[0] == "cinc:E07500" and others[-1] == "cinc:JS20019" and all(patient[r] == r for r in others)
    assert {split[r] for r in others} == {"train", "val", "test"}
    assert ds.meta["sources"]["cinc"]["records"]["cinc:E07500"].keys() == {"E07500.hea", "E07500.mat"}
    assert ds.leads == ["II"]


def _hand_made_ptbxl(root: Path) -> Path:
    """PTB-XL ecg_id 1-3 on disk (100 Hz), NORMAL, MI, ARRHYTHMIA."""
    root.mkdir()
    (root / "scp_statements.csv").write_text(
        ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
        "NORM,normal ECG,1.0,,,NORM,NORM\nIMI,inferior MI,1.0,,,MI,IMI\nSR,sinus rhythm,,,1.0,,\nAFIB,atrial fibrillation,,,1.0,,\n"
    )
    lines = ["ecg_id,patient_id,scp_codes,strat_fold,filename_lr,filename_hr"]
    for ecg, patient, codes, fold in ((1, 11, "{'NORM': 100.0, 'SR': 0.0}", 1), (2, 12, "{'IMI': 100.0}", 9), (3, 13, "{'AFIB': 100.0}", 10)):
        lines.append(f'{ecg},{patient}.0,"{codes}",{fold},records100/00000/{ecg:05d}_lr,records500/00000/{ecg:05d}_hr')
        write_record(root / "records100/00000", f"{ecg:05d}_lr", ecg_like(10, 100, seed=ecg, leads=2), 100, ["I", "II"])
    (root / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")
    return root


def _challenge_record(root: Path, name: str, dx: str, seed: int, fs: float = 500) -> None:
    write_record(root, name, ecg_like(10, fs, seed=seed, leads=2), fs, ["I", "II"], ["Age: 60", "Sex: Male", f"Dx: {dx}"])


def test_each_record_once_the_first_directory_wins(tmp_path):
    ptbxl = _hand_made_ptbxl(tmp_path / "ptbxl")
    a, b = tmp_path / "a", tmp_path / "b"
    _challenge_record(a, "HR00002", MI, seed=21)  # the challenge's copy of ecg_id 2
    _challenge_record(a, "HR00003", AF, seed=31, fs=257)  # any rate
    _challenge_record(a, "Q0001", SR, seed=41)
    _challenge_record(b, "Q0001", AF, seed=42)  # the same record name in a later directory
    _challenge_record(b, "S0001", f"{SR},{STACH}", seed=43, fs=1000)
    built = {}
    for order in (["--ptbxl-dir", str(ptbxl), "--source-dir", str(a)], ["--source-dir", str(a), "--ptbxl-dir", str(ptbxl)]):
        out = tmp_path / f"out{len(built)}"
        assert _run(*order, "--source-dir", str(b), "--out", str(out)) == 0
        ds = load_dataset(out)
        assert len(set(ds.record.tolist())) == len(ds.record) == 5  # one 10 s window per record, no id twice
        built[order[0]] = ds
    first, later = built["--ptbxl-dir"], built["--source-dir"]
    src = first.meta["sources"]
    assert sorted(src["ptbxl"]["record_dirs"]) == ["ptbxl:1", "ptbxl:2", "ptbxl:3"]
    assert sorted(src["cinc"]["record_dirs"]) == ["cinc:Q0001", "cinc:S0001"] and src["cinc"]["record_dirs"]["cinc:Q0001"] == str(a.resolve())
    assert src["cinc"]["duplicates"]["ids"] == ["cinc:Q0001", "ptbxl:2", "ptbxl:3"]
    assert [d["duplicates_skipped"] for d in src["cinc"]["directories"]] == [
        {"count": 2, "ids": ["ptbxl:2", "ptbxl:3"]}, {"count": 1, "ids": ["cinc:Q0001"]}
    ]  # fmt: skip
    src = later.meta["sources"]
    assert sorted(src["ptbxl"]["record_dirs"]) == ["ptbxl:1"] and src["ptbxl"]["directories"][0]["duplicates_skipped"]["ecg_ids"] == [2, 3]
    assert src["cinc"]["record_dirs"]["ptbxl:2"] == str(a.resolve())
    # the challenge copy keeps the PTB-XL patient and fold, and takes its label from its own codes
    for ds in (first, later):
        info = {r: (p, s, ds.label_names[y]) for r, p, s, y in zip(ds.record.tolist(), ds.patient.tolist(), ds.split.tolist(), ds.y.tolist())}
        assert info["ptbxl:2"] == ("ptbxl:12", "val", "MI") and info["ptbxl:3"] == ("ptbxl:13", "test", "ARRHYTHMIA")
        assert info["cinc:Q0001"][2] == "NORMAL" and info["cinc:S0001"][2] == "ARRHYTHMIA"


def test_hr_records_need_ptbxl_metadata(tmp_path):
    a = tmp_path / "a"
    _challenge_record(a, "HR00004", SR, seed=1)
    with pytest.raises(Exception, match=r"HR00004: a PTB-XL record \(ecg_id 4\); give --ptbxl-dir"):
        cinc_plans([("cinc", a)], "loose")
    with pytest.raises(Exception, match=r"HR00004: ecg_id 4 is not in the PTB-XL metadata"):
        cinc_plans([("ptbxl", _hand_made_ptbxl(tmp_path / "ptbxl")), ("cinc", a)], "loose")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match=f"{tmp_path / 'empty'}: no record in the challenge layout"):
        cinc_plans([("cinc", tmp_path / "empty")], "loose")


@pytest.mark.realdata
def test_bad_records_are_named(shared_data, tmp_path, capsys):
    sample = shared_data / "cinc2021_sample"
    d = tmp_path / "bad"
    d.mkdir()
    for name in ("E07500", "E07501", "E07502", "E07503", "E07504"):  # copies in tmp, each broken one way but E07502
        for ext in (".hea", ".mat"):
            shutil.copy(sample / f"{name}{ext}", d / f"{name}{ext}")
    (d / "E07500.mat").unlink()
    (d / "E07501.hea").write_text((d / "E07501.hea").read_text().replace("E07501.mat", "E07501_12lead.mat"))
    (d / "E07503.hea").write_text("\n".join(line for line in (d / "E07503.hea").read_text().splitlines() if "Dx" not in line) + "\n")
    (d / "E07504.hea").write_text((d / "E07504.hea").read_text().replace("# Dx: 111975006", "# Dx: 111975006,12345678"))
    out = tmp_path / "out"
    assert _run("--source-dir", str(d), "--out", str(out)) == 2
    assert f"{d / 'E07500'}: signal file E07500.mat is missing (it holds lead II)" in capsys.readouterr().err and not out.exists()
    with pytest.warns(UserWarning, match="skipped 4 bad record"):
        assert _run("--source-dir", str(d), "--out", str(out), "--skip-bad-records") == 0
    ds = load_dataset(out)
    assert ds.record.tolist() == ["cinc:E07502"]
    bad = sorted(ds.meta["skipped"]["bad_records"])
    assert len(bad) == 4
    assert f"{d / 'E07500'}: signal file E07500.mat is missing (it holds lead II)" in bad[0]
    assert f"{d / 'E07501'}: signal file E07501_12lead.mat is missing (it holds lead II)" in bad[1]
    assert f"{d / 'E07503'}: the header has no '# Dx:' line" in bad[2]
    assert f"{d / 'E07504'}: unknown SNOMED CT code(s) ['12345678']" in bad[3]
