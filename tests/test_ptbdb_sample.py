"""PTB Diagnostic on the real 3-record sample: headers declare 15 signals, the Frank leads' `.xyz` is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ecg_like, write_record

from pipeline.cli import main
from pipeline.data.dataset import load_dataset
from pipeline.data.records import RecordError, read_record

RECORDS = ("s0010_re", "s0014lre", "s0016lre")


@pytest.mark.realdata
def test_standard_leads_read_without_the_frank_leads(shared_data):
    path = shared_data / "ptbdb_sample" / "patient001" / "s0010_re"
    rec = read_record(path, ("ii",), expected_fs=(1000.0,))
    assert rec.leads == ["ii"] and rec.signal.shape == (1, 38400) and sorted(rec.files) == ["s0010_re.dat", "s0010_re.hea"]
    assert read_record(path, ("vx", "ii"), fallback=True).leads == ["ii"]  # preference order: the first lead that can be read
    with pytest.raises(RecordError, match=r"s0010_re: signal file s0010_re.xyz is missing \(it holds lead vx\)"):
        read_record(path, ("vx",))
    with pytest.raises(RecordError, match=r"s0010_re: signal file\(s\) \['s0010_re.xyz'\] are missing \(they hold leads \['vx', 'vy', 'vz'\]\)"):
        read_record(path, "all")


@pytest.mark.realdata
def test_prepare_mixed_on_the_sample(shared_data, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "ptbdb").symlink_to(shared_data / "ptbdb_sample")  # the layout `prepare mixed` expects, nothing copied
    out = tmp_path / "ptbdb"
    assert main(["prepare", "mixed", "--raw-dir", str(raw), "--datasets", "ptbdb", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    ds = load_dataset(out)
    per_record = {r: int((ds.record == r).sum()) for r in sorted(set(ds.record.tolist()))}
    assert per_record == {"ptbdb:patient001/s0010_re": 3, "ptbdb:patient001/s0014lre": 11, "ptbdb:patient001/s0016lre": 11}
    assert {ds.label_names[y] for y in ds.y} == {"MI"} and set(ds.patient.tolist()) == {"ptbdb:patient001"}
    assert ds.leads == ["ii"] and len(set(ds.split.tolist())) == 1
    assert ds.meta["sources"]["ptbdb"]["records"]["ptbdb:patient001/s0010_re"].keys() == {"s0010_re.dat", "s0010_re.hea"}


def test_hand_made_header_naming_an_absent_file(tmp_path):
    """Two leads in the `.dat`, a third declared in a file that is not there: the present leads are read
    (the same samples as without the declaration), the absent one is an error naming record, lead and file."""
    path = write_record(tmp_path, "r1", ecg_like(12, 500, seed=3, leads=2), 500, ["I", "II"])
    before = read_record(path, ("II",)).signal
    lines = (tmp_path / "r1.hea").read_text().splitlines()
    head = lines[0].split()
    head[1] = "3"
    lines[0] = " ".join(head)
    lines.insert(3, lines[2].replace("r1.dat", "r1.xyz").rsplit(" ", 1)[0] + " vx")
    (tmp_path / "r1.hea").write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(read_record(path, ("II",)).signal, before)
    with pytest.raises(RecordError, match=rf"{tmp_path / 'r1'}: signal file r1.xyz is missing \(it holds lead vx\)"):
        read_record(path, ("vx",))
    (tmp_path / "r1.dat").unlink()
    with pytest.raises(RecordError, match=r"r1: signal file r1.dat is missing \(it holds lead II\)"):
        read_record(Path(path), ("II",))
