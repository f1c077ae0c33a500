"""Metadata readers: one small file per exact DCASE format, compared with rows written out by hand."""

import math

import pytest

from at2seld.data import MetadataError, MetadataRow, read_metadata, write_metadata
from at2seld.data.dcase import tau2019_frames

R = MetadataRow


def test_tau2019_header_ele_before_azi_and_baseline_frame_conversion(tmp_path, text_writer):
    path = text_writer(
        tmp_path / "split1_ir0_ov2_3.csv",
        "sound_event_recording,start_time,end_time,ele,azi,dist\n"
        "speech,0.25,0.52,-10,40,2\n"
        "knock023.wav,0.7,0.7,20,-170,1\n",
    )
    rows = read_metadata(path, "tau2019")
    # speech: floor(2.5) = 2 .. ceil(5.2) = 6, both inclusive (the 2019 baseline fills [start, end + 1)).
    # knock (file-name form: class = name without digits/extension), zero length at 0.7 s: floor = ceil = 7, one frame.
    speech = [R(f, 5, 0, 40.0, -10.0, 2.0) for f in range(2, 7)]
    knock = [R(7, 0, 1, -170.0, 20.0, 1.0)]
    expected = speech + knock
    assert rows == expected


def test_tau2019_frames_rule():
    # The end frame is inclusive: an event over [0.0, 0.1] s covers frames 0 and 1, [1.0, 2.0] s covers 11 frames.
    assert list(tau2019_frames(0.0, 0.1)) == [0, 1]
    assert len(tau2019_frames(1.0, 2.0)) == 11
    assert list(tau2019_frames(1.05, 1.95)) == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]


def test_tau2020_track_column(tmp_path, text_writer):
    path = text_writer(tmp_path / "fold1_room1_mix001_ov1.csv", "10,6,0,-40,10\n10,11,1,120,-20\n11,6,0,-38,10\n")
    assert read_metadata(path, "tau2020") == [
        R(10, 6, 0, -40.0, 10.0, None), R(10, 11, 1, 120.0, -20.0, None), R(11, 6, 0, -38.0, 10.0, None)
    ]


def test_tau2021_source_column_same_class_twice(tmp_path, text_writer):
    path = text_writer(tmp_path / "fold6_room1_mix001.csv", "0,9,0,10,0\n0,9,1,-150,30\n1,9,1,-148,30\n")
    assert read_metadata(path, "tau2021") == [
        R(0, 9, 0, 10.0, 0.0, None), R(0, 9, 1, -150.0, 30.0, None), R(1, 9, 1, -148.0, 30.0, None)
    ]


def test_starss23_two_simultaneous_sources_of_one_class_distance_in_metres(tmp_path, text_writer):
    path = text_writer(tmp_path / "fold3_room21_mix001.csv", "12,0,0,30,10,150\n12,0,1,-90,0,205\n13,0,1,-88,0,205\n")
    assert read_metadata(path, "starss23") == [
        R(12, 0, 0, 30.0, 10.0, 1.5), R(12, 0, 1, -90.0, 0.0, 2.05), R(13, 0, 1, -88.0, 0.0, 2.05)
    ]
    assert read_metadata(path, "synthetic") == read_metadata(path, "starss23")


def test_starss22_five_columns(tmp_path, text_writer):
    path = text_writer(tmp_path / "fold4_room2_mix001.csv", "7,12,0,-179,45\n")
    assert read_metadata(path, "starss22") == [R(7, 12, 0, -179.0, 45.0, None)]


def test_num_frames_clips_rows(tmp_path, text_writer):
    path = text_writer(tmp_path / "a.csv", "0,1,0,0,0\n5,1,0,0,0\n")
    assert [r.frame for r in read_metadata(path, "tau2021", num_frames=5)] == [0]


def test_write_then_read_roundtrip(tmp_path):
    rows = [R(0, 3, 0, -30.0, 12.0, 1.25), R(0, 3, 1, 100.0, -5.0, 3.0)]
    write_metadata(tmp_path / "x.csv", rows, "starss23")
    assert (tmp_path / "x.csv").read_text() == "0,3,0,-30,12,125\n0,3,1,100,-5,300\n"
    assert read_metadata(tmp_path / "x.csv", "starss23") == rows


BAD_ROWS = [
    ("starss23", "1,2,3,4\n", "expected 5 or 6 columns"),
    ("tau2021", "1,2,3,4,5,6\n", "expected 5 columns"),
    ("tau2020", "1,a,0,10,10\n", "class 'a' is not a number"),
    ("starss23", "1,13,0,10,10\n", "class index 13 is outside [0, 12]"),
    ("tau2021", "1,12,0,10,10\n", "class index 12 is outside [0, 11]"),
    ("starss23", "1,1,0,200,10\n", "azimuth 200 is outside"),
    ("starss23", "1,1,0,10,95\n", "elevation 95 is outside"),
    ("starss22", "-1,1,0,10,10\n", "frame -1 is negative"),
    ("starss23", "1,1,0,10,10,-5\n", "distance -5 cm is negative"),
    ("tau2020", "1.5,1,0,10,10\n", "frame '1.5' is not an integer"),
    ("tau2019", "sound_event_recording,start_time,end_time,ele,azi,dist\nspeech,2.0,1.0,0,0,1\n",
     "end_time 1 s is before start_time 2 s"),
    ("tau2019", "sound_event_recording,start_time,end_time,ele,azi,dist\nbanjo,1.0,2.0,0,0,1\n",
     "'banjo' is not a TAU2019 class"),
    ("tau2019", "sound_event_recording,start_time,end_time,ele,azi,dist\nspeech,1.0,2.0,0,0\n",
     "expected 6 columns"),
]


@pytest.mark.parametrize("dataset,text,message", BAD_ROWS)
def test_malformed_rows_name_file_and_line(tmp_path, text_writer, dataset, text, message):
    body = "0,1,0,0,0\n" if dataset != "tau2019" else ""
    path = text_writer(tmp_path / "bad.csv", body + text if dataset != "tau2019" else text)
    line = 2
    with pytest.raises(MetadataError) as err:
        read_metadata(path, dataset)
    assert f"bad.csv:{line}:" in str(err.value)
    assert message in str(err.value)
    assert "strict=False" in str(err.value)


def test_tau2019_without_header_is_rejected(tmp_path, text_writer):
    path = text_writer(tmp_path / "nohead.csv", "speech,0.1,0.2,0,0,1\n")
    with pytest.raises(MetadataError, match=r"nohead.csv:1: expected the TAU2019 header"):
        read_metadata(path, "tau2019")


def test_header_in_frame_format_is_explained(tmp_path, text_writer):
    path = text_writer(tmp_path / "h.csv", "frame,class,source,azimuth,elevation\n0,1,0,0,0\n")
    with pytest.raises(MetadataError, match="have no header line"):
        read_metadata(path, "starss22")


def test_non_strict_skips_and_counts(tmp_path, text_writer):
    path = text_writer(tmp_path / "mixed.csv", "0,1,0,0,0\n1,99,0,0,0\nx,1,0,0,0\n2,1,0,0,0\n")
    with pytest.warns(UserWarning, match=r"Skipped 2 malformed row\(s\) in .*mixed.csv; first: .*mixed.csv:2:"):
        rows = read_metadata(path, "starss23", strict=False)
    assert [r.frame for r in rows] == [0, 2]


def test_unknown_dataset_and_missing_file(tmp_path, text_writer):
    path = text_writer(tmp_path / "a.csv", "0,1,0,0,0\n")
    with pytest.raises(ValueError, match="Unknown data set 'starss24'.*tau2019"):
        read_metadata(path, "starss24")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_metadata(tmp_path / "nope.csv", "starss23")


def test_rows_are_finite_floats(tmp_path, text_writer):
    path = text_writer(tmp_path / "a.csv", "0,1,0,-180,-90,0\n")
    (row,) = read_metadata(path, "starss23")
    assert isinstance(row.azimuth_deg, float) and math.isfinite(row.elevation_deg) and row.distance_m == 0.0
