"""Every label rule, in one module (DESIGN.md, Labels), following the seed project.

- MIT-BIH Arrhythmia: beat annotations -> ARRHYTHMIA windows (never NORMAL).
- MIT-BIH NSR: NORMAL.
- PTB Diagnostic: the header's "Reason for admission".
- PTB-XL: `scp_codes` joined with `scp_statements.csv`, modes loose / semi / strict,
  plus the two-stage rules.
- Synthetic: the `label:` header comment the generator writes.
- PhysioNet/CinC Challenge 2020/2021: SNOMED CT codes (`# Dx:`) mapped onto PTB-XL's superclasses,
  rhythm and ectopic-beat codes, then PTB-XL's rule (`snomed_label`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd

from pipeline.data.labels import NO_CLASS

# --- MIT-BIH beat symbols -------------------------------------------------------------
NORMAL_BEATS = frozenset({"N", "L", "R", "e", "j"})
NON_BEAT_SYMBOLS = frozenset({"|", "~", "+", "[", "]", "!", "x", "(", ")", "p", "t", "u", "`", "^", "=", '"', "?"})


def is_beat(symbol: str) -> bool:
    return symbol not in NON_BEAT_SYMBOLS


def is_abnormal_beat(symbol: str) -> bool:
    return symbol not in NORMAL_BEATS and symbol not in NON_BEAT_SYMBOLS


def rescale_positions(samples: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Annotation sample indices moved to another rate (rounded, as the seed does)."""
    samples = np.asarray(samples)
    if fs_in == fs_out:
        return samples.astype(np.int64)
    return np.round(samples * (fs_out / fs_in)).astype(np.int64)


def arrhythmia_window_mask(
    ann_samples: np.ndarray,
    ann_symbols: list[str],
    fs_in: float,
    fs_out: float,
    starts: np.ndarray,
    window: int,
    min_count: int = 1,
    min_ratio: float = 0.0,
) -> np.ndarray:
    """Which windows `[start, start + window)` are ARRHYTHMIA.

    A window qualifies when it holds at least one beat, at least `min_count`
    non-normal beats, and a non-normal share of beats of at least `min_ratio`.
    """
    symbols = np.asarray(ann_symbols, dtype=object)
    beat = np.array([is_beat(s) for s in symbols], dtype=bool)
    abnormal = np.array([is_abnormal_beat(s) for s in symbols], dtype=bool)
    beat_pos = np.sort(rescale_positions(ann_samples[beat], fs_in, fs_out))
    abn_pos = np.sort(rescale_positions(ann_samples[abnormal], fs_in, fs_out))
    ends = starts + window
    n_beats = np.searchsorted(beat_pos, ends, "left") - np.searchsorted(beat_pos, starts, "left")
    n_abn = np.searchsorted(abn_pos, ends, "left") - np.searchsorted(abn_pos, starts, "left")
    ratio = np.divide(n_abn, n_beats, out=np.zeros(len(starts)), where=n_beats > 0)
    return (n_abn > 0) & (n_beats > 0) & (n_abn >= min_count) & (ratio >= min_ratio)


def sinus_normal_window_mask(
    ann_samples: np.ndarray,
    ann_symbols: list[str],
    ann_aux: list[str],
    fs_in: float,
    fs_out: float,
    starts: np.ndarray,
    window: int,
) -> np.ndarray:
    """Which windows hold normal sinus rhythm only: at least one beat, every beat `N`, and the rhythm
    annotation in force over the whole window `(N` (MIT-BIH's '+' rhythm marks; none before the first).

    For external checks (a model's NORMAL recall on another population and device), not for training:
    DESIGN's MIT-BIH rule never makes NORMAL training windows.
    """
    symbols = np.asarray(ann_symbols, dtype=object)
    pos = rescale_positions(np.asarray(ann_samples), fs_in, fs_out)
    beat = np.array([is_beat(s) for s in symbols], dtype=bool)
    other = beat & (symbols != "N")
    beat_pos, other_pos = np.sort(pos[beat]), np.sort(pos[other])
    rhythm = np.array([s == "+" for s in symbols], dtype=bool)
    r_pos = pos[rhythm]
    r_sinus = np.array([str(a).strip("\x00 ").startswith("(N") for a in np.asarray(ann_aux, dtype=object)[rhythm]], dtype=bool)
    ends = starts + window
    n_beats = np.searchsorted(beat_pos, ends, "left") - np.searchsorted(beat_pos, starts, "left")
    n_other = np.searchsorted(other_pos, ends, "left") - np.searchsorted(other_pos, starts, "left")
    # rhythm in force at the start: the last mark at or before it; no mark may change it inside the window
    at_start = np.searchsorted(r_pos, starts, "right") - 1
    inside = np.searchsorted(r_pos, ends, "left") - np.searchsorted(r_pos, starts, "right")
    sinus_start = np.where(at_start >= 0, r_sinus[np.clip(at_start, 0, None)] if len(r_sinus) else False, False)
    return (n_beats > 0) & (n_other == 0) & sinus_start & (inside == 0)


def mitdb_window_finding(
    ann_samples: np.ndarray, ann_symbols: list[str], ann_aux: list[str], fs_in: float, fs_out: float, start: int, window: int
) -> str:
    """What makes a window ARRHYTHMIA, for recall by finding: the rhythms other than `(N` in force in it
    (`rhythm AFIB`, `rhythm B+T`, ...), else its non-normal beat symbols and how many there are
    (`beats V x1`, `beats A+V x2-4`, `beats V x5+`)."""
    symbols = np.asarray(ann_symbols, dtype=object)
    pos = rescale_positions(np.asarray(ann_samples), fs_in, fs_out)
    end = start + window
    marks = np.flatnonzero(symbols == "+")
    before = marks[pos[marks] <= start]
    in_force = ([before[-1]] if len(before) else []) + [k for k in marks if start < pos[k] < end]
    rhythms = {str(ann_aux[k]).strip("\x00 ").lstrip("(") for k in in_force} - {"N", ""}
    if rhythms:
        return "rhythm " + "+".join(sorted(rhythms))
    inside = [str(s) for s, q in zip(symbols, pos) if start <= q < end and is_abnormal_beat(str(s))]
    n = len(inside)
    count = "x1" if n == 1 else "x2-4" if n < 5 else "x5+"
    return f"beats {'+'.join(sorted(set(inside)))} {count}" if n else "none"


# --- PTB Diagnostic ---------------------------------------------------------------------
PTB_REASONS = {"myocardial infarction": "MI", "healthy control": "NORMAL"}


def ptb_label(comments: Iterable[str]) -> str | None:
    """MI / NORMAL from the header's `Reason for admission:` line; None for anything else."""
    for line in comments:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "reason for admission":
            return PTB_REASONS.get(value.strip().lower())
    return None


# --- CinC 2017 (single lead, consumer device) -------------------------------------------
# The challenge's classes: N normal sinus rhythm, A atrial fibrillation, O other rhythm, ~ too noisy.
# N says the rhythm is sinus, nothing about infarction: its windows may carry the set {NORMAL, MI}.
CINC2017_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
CINC2017_NORMAL_SETS: tuple[str, ...] = ("NORMAL", "NORMAL|MI")


def cinc2017_label(code: str, normal_set: str = "NORMAL", other: bool = True) -> str | None:
    """The window label of a CinC 2017 class: N -> `normal_set`, A and O -> ARRHYTHMIA (O None when
    `other` is False), ~ -> NO_CLASS (never a class target; it tests the quality rule)."""
    if normal_set not in CINC2017_NORMAL_SETS:
        raise ValueError(f"N windows take one of {CINC2017_NORMAL_SETS}, not {normal_set!r}")
    rule = {"N": normal_set, "A": "ARRHYTHMIA", "O": "ARRHYTHMIA" if other else None, "~": NO_CLASS}
    if code not in rule:
        raise ValueError(f"unknown CinC 2017 class {code!r} (expected one of {list(CINC2017_CLASSES)})")
    return rule[code]


# --- Synthetic --------------------------------------------------------------------------
def header_field(comments: Iterable[str], key: str) -> str | None:
    """Value of a `key: value` header comment, or None."""
    for line in comments:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == key.lower():
            return v.strip()
    return None


# --- PTB-XL -----------------------------------------------------------------------------
LabelMode = Literal["loose", "semi", "strict", "screen"]
LABEL_MODES: tuple[str, ...] = ("loose", "semi", "strict", "screen")


# PTB-XL's premature-beat statements: neither rhythm nor diagnostic codes, so by default a sinus record
# with them keeps its label; with `prepare ptbxl --ectopic-as-arrhythmia` they make it ARRHYTHMIA, as one
# non-normal beat makes an MIT-BIH window ARRHYTHMIA.
ECTOPIC_BEAT_CODES = frozenset({"PVC", "PAC", "PRC(S)"})


class PtbxlStatements:
    """`scp_statements.csv`: which codes are diagnostic (their class and subclass) and which are rhythm."""

    def __init__(self, diagnostic_class: dict[str, str], rhythm_codes: set[str], diagnostic_subclass: dict[str, str] | None = None) -> None:
        self.diagnostic_class = diagnostic_class
        self.rhythm_codes = rhythm_codes
        self.diagnostic_subclass = diagnostic_subclass or {}

    @classmethod
    def read(cls, path: Path) -> "PtbxlStatements":
        try:
            table = pd.read_csv(path, index_col=0)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: scp_statements.csv is missing") from None
        for col in ("diagnostic", "rhythm", "diagnostic_class"):
            if col not in table.columns:
                raise ValueError(f"{path}: column {col!r} is missing")
        diag: dict[str, str] = {}
        sub: dict[str, str] = {}
        rhythm: set[str] = set()
        for code, row in table.iterrows():
            if pd.notna(row["diagnostic"]) and int(row["diagnostic"]) == 1:
                diag[str(code)] = str(row["diagnostic_class"]).strip()
                if pd.notna(row.get("diagnostic_subclass")):
                    sub[str(code)] = str(row["diagnostic_subclass"]).strip()
            if pd.notna(row["rhythm"]) and int(row["rhythm"]) == 1:
                rhythm.add(str(code))
        return cls(diag, rhythm, sub)

    def classes_and_rhythms(self, scp_codes: dict[str, float], ectopic: bool = False) -> tuple[set[str], set[str]]:
        """Diagnostic superclasses and rhythm codes of one record (any likelihood counts). With `ectopic`,
        the ectopic-beat statements (ECTOPIC_BEAT_CODES) count as rhythm codes other than SR."""
        classes = {self.diagnostic_class[c] for c in scp_codes if self.diagnostic_class.get(c)}
        rhythms = {c for c in scp_codes if c in self.rhythm_codes or (ectopic and c in ECTOPIC_BEAT_CODES)}
        return classes, rhythms


def ptbxl_finding(label: str, codes: dict[str, float], statements: PtbxlStatements) -> str | None:
    """What makes a PTB-XL record MI or ARRHYTHMIA, for recall by finding (None for NORMAL): the
    diagnostic subclasses of its MI codes (IMI, AMI, LMI, PMI), or its rhythm codes other than SR, else
    its premature-beat codes (records labelled with --ectopic-as-arrhythmia); '+' joins several."""
    if label == "MI":
        found = {statements.diagnostic_subclass.get(c, c) for c in codes if statements.diagnostic_class.get(c) == "MI"}
    elif label == "ARRHYTHMIA":
        found = {c for c in codes if c in statements.rhythm_codes and c != "SR"} or set(codes) & ECTOPIC_BEAT_CODES
    else:
        return None
    return "+".join(sorted(found)) or "unspecified"


_NUM = r"-?\d+(?:\.\d*)?"
_PAIR = rf"'([^'\\]+)'\s*:\s*({_NUM})"
_SCP_DICT = re.compile(rf"\{{\s*(?:'[^'\\]+'\s*:\s*{_NUM}\s*(?:,\s*'[^'\\]+'\s*:\s*{_NUM}\s*)*,?\s*)?\}}")
_SCP_PAIR = re.compile(_PAIR)


def parse_scp_codes(raw: object) -> dict[str, float]:
    """The `scp_codes` cell (a Python dict literal) as a dict; ValueError if malformed."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, float) and np.isnan(raw)) or raw == "":
        return {}
    if _SCP_DICT.fullmatch(str(raw).strip()):  # the common shape, ~10x faster than literal_eval
        return {code: float(v) for code, v in _SCP_PAIR.findall(str(raw))}
    try:
        value = ast.literal_eval(str(raw))
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"scp_codes is not a dict literal: {str(raw)[:60]!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes is not a dict literal: {str(raw)[:60]!r}")
    return value


def ptbxl_label(classes: set[str], rhythms: set[str], mode: LabelMode) -> str | None:
    """Three-class label of a PTB-XL record, or None when the mode leaves it out.

    loose: MI wins; any rhythm other than SR is ARRHYTHMIA; NORMAL is NORM-only.
    screen: as loose, but a sinus record with findings other than MI (ST-T change, hypertrophy,
        conduction) is NORMAL, the screen's "no MI, no arrhythmia", instead of left out; so the
        model must find what is specific to MI rather than any abnormal ST-T.
    strict: MI only if MI is the only class and the rhythm is sinus; NORMAL likewise;
    ARRHYTHMIA only with a non-SR rhythm on an otherwise NORM record.
    semi: as strict, but ARRHYTHMIA also with no diagnostic class at all.
    """
    non_sr = any(r != "SR" for r in rhythms)
    if mode in ("loose", "screen"):
        if "MI" in classes:
            return "MI"
        if non_sr:
            return "ARRHYTHMIA"
        if classes == {"NORM"} or (mode == "screen" and classes):
            return "NORMAL"
        return None
    if mode not in ("strict", "semi"):
        raise ValueError(f"unknown label mode {mode!r}; expected one of {LABEL_MODES}")
    if classes == {"MI"} and not non_sr:
        return "MI"
    if classes == {"NORM"} and not non_sr:
        return "NORMAL"
    if non_sr and (classes == {"NORM"} if mode == "strict" else classes <= {"NORM"}):
        return "ARRHYTHMIA"
    return None


def stage1_label(rhythms: set[str], assume_sinus_if_missing: bool = True) -> str | None:
    """SINUS vs ARRHYTHMIA from rhythm codes alone."""
    if any(r != "SR" for r in rhythms):
        return "ARRHYTHMIA"
    if "SR" in rhythms or assume_sinus_if_missing:
        return "SINUS"
    return None


def stage2_label(classes: set[str], rhythms: set[str]) -> str | None:
    """NORMAL vs MI on sinus records with a single pure diagnostic class."""
    if any(r != "SR" for r in rhythms):
        return None
    if classes == {"MI"}:
        return "MI"
    if classes == {"NORM"}:
        return "NORMAL"
    return None



# --- PhysioNet/CinC Challenge 2020/2021: SNOMED CT -------------------------------------
# Every code of the challenge's dx_mapping_scored.csv (30) and dx_mapping_unscored.csv (103), as
# published in github physionetchallenges/evaluation-2021 @ 09de852841a9fa497fb9efb80734dafd13e4ec1f,
# mapped onto what `ptbxl_label` consumes, following the PTB-XL statement the code stands for where
# PTB-XL has one (scp_statements.csv):
# - a diagnostic superclass (NORM MI STTC CD HYP): PTB-XL's diagnostic statements;
# - a rhythm code (any but SR makes a record ARRHYTHMIA under loose): PTB-XL's rhythm statements, and
#   the challenge's abbreviation (VT, AVJR, ...) for a rhythm PTB-XL does not name;
# - an ectopic-beat code (PVC, PAC, PRC(S) as in ECTOPIC_BEAT_CODES, or the challenge's abbreviation):
#   no label by default, a rhythm other than SR with `ectopic` (--ectopic-as-arrhythmia). Escape beats
#   follow the MIT-BIH rule: atrial and junctional escape beats count as normal beats (NORMAL_BEATS 'e',
#   'j'), a ventricular escape beat as a non-normal one;
# - nothing (SNOMED_NONE): PTB-XL's form statements (T-wave, ST-segment, Q-wave, voltage, PR and QRS
#   shape findings), axis and rotation findings, lead reversal, benign variants (early repolarisation),
#   and clinical diagnoses that are no ECG statement (heart failure, valve disease, TIA): they neither
#   make nor prevent a label, as form statements do for a PTB-XL record.
# Sinus rhythm (426783006) stands for PTB-XL's SR and NORM both (the challenge coded either as it): it
# is rhythm SR, and the superclass NORM only when no other code gives a superclass.
SINUS_RHYTHM = "426783006"
SNOMED_NONE = ""
_SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
_RHYTHM, _ECTOPIC = "rhythm:", "ectopic:"

# code -> (challenge abbreviation, meaning): a superclass, "rhythm:<code>", "ectopic:<code>" or SNOMED_NONE
SNOMED_CODES: dict[str, tuple[str, str]] = {
    # scored (dx_mapping_scored.csv)
    "164889003": ("AF", "rhythm:AFIB"),
    "164890007": ("AFL", "rhythm:AFLT"),
    "6374002": ("BBB", "CD"),
    "426627000": ("Brady", "rhythm:BRADY"),
    "733534002": ("CLBBB", "CD"),
    "713427006": ("CRBBB", "CD"),
    "270492004": ("IAVB", "CD"),
    "713426002": ("IRBBB", "CD"),
    "39732003": ("LAD", SNOMED_NONE),
    "445118002": ("LAnFB", "CD"),
    "164909002": ("LBBB", "CD"),
    "251146004": ("LQRSV", SNOMED_NONE),  # PTB-XL LVOLT, a form statement
    "698252002": ("NSIVCB", "CD"),
    SINUS_RHYTHM: ("NSR", "rhythm:SR"),  # and NORM when nothing else gives a superclass
    "284470004": ("PAC", "ectopic:PAC"),
    "10370003": ("PR", "rhythm:PACE"),
    "365413008": ("PRWP", SNOMED_NONE),
    "427172004": ("PVC", "ectopic:PVC"),
    "164947007": ("LPR", SNOMED_NONE),  # PTB-XL LPR, form
    "111975006": ("LQT", "STTC"),  # PTB-XL LNGQT
    "164917005": ("QAb", SNOMED_NONE),  # PTB-XL QWAVE, form
    "47665007": ("RAD", SNOMED_NONE),
    "59118001": ("RBBB", "CD"),
    "427393009": ("SA", "rhythm:SARRH"),
    "426177001": ("SB", "rhythm:SBRAD"),
    "427084000": ("STach", "rhythm:STACH"),
    "63593006": ("SVPB", "ectopic:PAC"),
    "164934002": ("TAb", SNOMED_NONE),  # PTB-XL NT_ / TAB_, form
    "59931005": ("TInv", SNOMED_NONE),  # PTB-XL INVT, form
    "17338001": ("VPB", "ectopic:PVC"),
    # unscored (dx_mapping_unscored.csv)
    "233892002": ("AAR", "rhythm:AAR"),
    "164951009": ("abQRS", SNOMED_NONE),  # PTB-XL ABQRS, form
    "251187003": ("AED", SNOMED_NONE),  # atrial escape beat: MIT-BIH 'e', a normal beat
    "61277005": ("AIVR", "rhythm:AIVR"),
    "426664006": ("AJR", "rhythm:AJR"),
    "251139008": ("ALR", SNOMED_NONE),  # suspect arm leads reversed
    "57054005": ("AMI", "MI"),
    "413444003": ("AMIs", "STTC"),
    "426434006": ("AnMIs", "STTC"),  # PTB-XL ISCAN
    "54329005": ("AnMI", "MI"),
    "251173003": ("AB", "rhythm:BIGU"),
    "195080001": ("AFAFL", "rhythm:AFIB"),
    "195126007": ("AH", "HYP"),
    "251268003": ("AP", "rhythm:PACE"),
    "106068003": ("ARH", "rhythm:ARH"),
    "713422000": ("ATach", "rhythm:ATACH"),
    "233917008": ("AVB", "CD"),
    "50799005": ("AVD", "rhythm:AVD"),
    "29320008": ("AVJR", "rhythm:AVJR"),
    "251166008": ("AVNRT", "rhythm:AVNRT"),
    "233897008": ("AVRT", "rhythm:AVRT"),
    "251170000": ("BPAC", "ectopic:PAC"),
    "418818005": ("BRU", "STTC"),  # Brugada: a repolarisation pattern, not normal
    "74615001": ("BTS", "rhythm:BTS"),
    "426749004": ("CAF", "rhythm:AFIB"),
    "251199005": ("CCR", SNOMED_NONE),
    "61721007": ("CVCL/CCVCL", SNOMED_NONE),
    "698247007": ("CD", "rhythm:DYSRHYTHMIA"),  # cardiac dysrhythmia (PTB's reason for admission)
    "27885002": ("CHB", "CD"),  # PTB-XL 3AVB
    "204384007": ("CIAHB", "CD"),
    "53741008": ("CHD", "STTC"),  # coronary heart disease: ischaemic, as PTB-XL ISC_
    "413844008": ("CMI", "STTC"),
    "251198002": ("CR", SNOMED_NONE),
    "82226007": ("DIB", "CD"),
    "428417006": ("ERe", SNOMED_NONE),  # early repolarisation, a benign variant
    "13640000": ("FB", "ectopic:FB"),  # fusion beats: MIT-BIH 'F', non-normal
    "164942001": ("FQRS", SNOMED_NONE),
    "84114007": ("HF", SNOMED_NONE),
    "368009": ("HVD", SNOMED_NONE),
    "251259000": ("HTV", SNOMED_NONE),
    "251200008": ("ICA", SNOMED_NONE),
    "195042002": ("IIAVB", "CD"),  # PTB-XL 2AVB
    "426183003": ("IIAVBII", "CD"),
    "425419005": ("IIs", "STTC"),  # PTB-XL ISCIN
    "251120003": ("ILBBB", "CD"),
    "704997005": ("ISTD", SNOMED_NONE),  # PTB-XL STD_, form
    "49260003": ("IR", "rhythm:IR"),
    "426995002": ("JE", SNOMED_NONE),  # junctional escape: MIT-BIH 'j', a normal beat
    "251164006": ("JPC", "ectopic:PRC(S)"),
    "426648003": ("JTach", "rhythm:JTACH"),
    "253352002": ("LAA", "HYP"),  # PTB-XL LAO/LAE
    "67741000119109": ("LAE", "HYP"),  # PTB-XL LAO/LAE
    "446813000": ("LAH", "HYP"),
    "425623009": ("LIs", "STTC"),  # PTB-XL ISCLA
    "445211001": ("LPFB", "CD"),
    "164873001": ("LVH", "HYP"),
    "55827005": ("LVHV", SNOMED_NONE),  # PTB-XL VCLVH, form
    "370365005": ("LVS", "STTC"),
    "164865005": ("MI", "MI"),
    "164861001": ("MIs", "STTC"),  # PTB-XL ISC_
    "54016002": ("MoI", "CD"),  # PTB-XL 2AVB
    "428750005": ("NSSTTA", "STTC"),  # PTB-XL NST_
    "164867002": ("OldMI", "MI"),
    "282825002": ("PAF", "rhythm:AFIB"),
    "251205003": ("PPW", SNOMED_NONE),
    "67198005": ("PSVT", "rhythm:PSVT"),
    "425856008": ("PVT", "rhythm:VT"),
    "164912004": ("PWC", SNOMED_NONE),
    "253339007": ("RAAb", "HYP"),  # PTB-XL RAO/RAE
    "164921003": ("RAb", SNOMED_NONE),
    "446358003": ("RAH", "HYP"),
    "67751000119106": ("RAHV", SNOMED_NONE),  # a voltage criterion, as PTB-XL VCLVH
    "314208002": ("RAF", "rhythm:AFIB"),
    "89792004": ("RVH", "HYP"),
    "17366009": ("SAAWR", "rhythm:WAP"),
    "65778007": ("SAB", "rhythm:SAB"),
    "5609005": ("SARR", "rhythm:SARR"),
    "60423000": ("SND", "rhythm:SND"),
    "49578007": ("SPRI", SNOMED_NONE),
    "77867006": ("SQT", "STTC"),  # as PTB-XL LNGQT
    "55930002": ("STC", "STTC"),  # PTB-XL NST_
    "429622005": ("STD", SNOMED_NONE),  # PTB-XL STD_, form
    "164931005": ("STE", SNOMED_NONE),  # PTB-XL STE_, form
    "164930006": ("STIAb", "STTC"),  # as PTB-XL NST_
    "251168009": ("SVB", "rhythm:BIGU"),
    "426761007": ("SVT", "rhythm:SVTAC"),
    "266257000": ("TIA", SNOMED_NONE),
    "251223006": ("TPW", SNOMED_NONE),
    "164937009": ("UAb", SNOMED_NONE),
    "11157007": ("VBig", "rhythm:BIGU"),
    "164884008": ("VEB", "ectopic:PVC"),
    "75532003": ("VEsB", "ectopic:VESB"),  # ventricular escape beat: MIT-BIH 'E', non-normal
    "81898007": ("VEsR", "rhythm:VESR"),
    "164896001": ("VF", "rhythm:VF"),
    "111288001": ("VFL", "rhythm:VFL"),
    "266249003": ("VH", "HYP"),
    "195060002": ("VPEx", "CD"),  # PTB-XL WPW
    "251266004": ("VPP", "rhythm:PACE"),
    "251182009": ("VPVC", "ectopic:PVC"),
    "164895002": ("VTach", "rhythm:VT"),
    "251180001": ("VTrig", "rhythm:TRIGU"),
    "195101003": ("WAP", "rhythm:WAP"),
    "74390002": ("WPW", "CD"),
}


class UnknownSnomedCode(ValueError):
    """A diagnosis code outside the challenge's scored and unscored mappings."""


def snomed_classes_and_rhythms(codes: Iterable[str], ectopic: bool = False) -> tuple[set[str], set[str]]:
    """Diagnostic superclasses and rhythm codes of one record's SNOMED CT codes, as `PtbxlStatements`
    gives them for scp_codes. `ectopic`: ectopic-beat codes count as rhythms other than SR.
    Raises UnknownSnomedCode naming the codes that are not in SNOMED_CODES."""
    codes = [str(c).strip() for c in codes]
    unknown = [c for c in codes if c not in SNOMED_CODES]
    if unknown:
        raise UnknownSnomedCode(f"unknown SNOMED CT code(s) {unknown} (not in the challenge's dx_mapping_scored/unscored.csv)")
    classes: set[str] = set()
    rhythms: set[str] = set()
    for code in codes:
        meaning = SNOMED_CODES[code][1]
        if meaning.startswith(_RHYTHM):
            rhythms.add(meaning[len(_RHYTHM) :])
        elif meaning.startswith(_ECTOPIC):
            if ectopic:
                rhythms.add(meaning[len(_ECTOPIC) :])
        elif meaning:
            classes.add(meaning)
    if SINUS_RHYTHM in codes and not classes:
        classes.add("NORM")
    return classes, rhythms


def snomed_label(codes: Iterable[str], mode: LabelMode, ectopic: bool = False) -> str | None:
    """Three-class label of a challenge record from its `# Dx:` codes by PTB-XL's rule (`ptbxl_label`)."""
    classes, rhythms = snomed_classes_and_rhythms(codes, ectopic)
    return ptbxl_label(classes, rhythms, mode)


def parse_dx(comments: Iterable[str]) -> list[str] | None:
    """The comma-separated codes of a `Dx:` header comment (None without one)."""
    value = header_field(comments, "Dx")
    return None if value is None else [c.strip() for c in value.split(",") if c.strip()]
