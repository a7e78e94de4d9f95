"""Every label rule, in one module (DESIGN.md, Labels), following the seed project.

- MIT-BIH Arrhythmia: beat annotations -> ARRHYTHMIA windows (never NORMAL).
- MIT-BIH NSR: NORMAL.
- PTB Diagnostic: the header's "Reason for admission".
- PTB-XL: `scp_codes` joined with `scp_statements.csv`, modes loose / semi / strict,
  plus the two-stage rules.
- Synthetic: the `label:` header comment the generator writes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd

from .labels import NO_CLASS

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

