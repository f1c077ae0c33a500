"""Folder scanning: pairs, split rules per data set, and every layout error."""

import pytest

from at2seld.data import DatasetLayoutError, scan_dcase, select_split
from at2seld.data.manifests import parse_file_id


def test_starss23_layout_and_splits(starss_dir):
    recs = scan_dcase("starss23", starss_dir)
    by_id = {r.file_id: r for r in recs}
    assert sorted(by_id) == ["fold3_room21_mix001", "fold3_room4_mix002", "fold4_room23_mix001", "mix001"]
    r = by_id["fold3_room21_mix001"]
    assert (r.split_folder, r.split, r.fold, r.room) == ("dev-train-sony", "train", 3, 21)
    assert (r.sampling_rate, r.num_channels, r.num_samples, r.duration_s) == (24000, 4, 24000, 1.0)
    assert r.metadata_path.endswith("metadata_dev/dev-train-sony/fold3_room21_mix001.csv")
    ev = by_id["mix001"]
    assert (ev.split, ev.labeled, ev.metadata_path, ev.fold) == ("eval", False, None, None)
    assert [x.file_id for x in select_split(recs, "train")] == ["fold3_room21_mix001", "fold3_room4_mix002"]
    # the STARSS baselines validate on the test folders (no separate validation folders)
    assert [x.file_id for x in select_split(recs, "val")] == ["fold4_room23_mix001"]
    assert [x.file_id for x in select_split(recs, "test")] == ["fold4_room23_mix001"]
    assert [x.file_id for x in select_split(recs, "eval")] == ["mix001"]
    assert len(select_split(recs, "dev")) == 3


def test_hidden_files_are_ignored(starss_dir, text_writer):
    text_writer(starss_dir / "foa_dev" / "dev-train-sony" / "._fold3_room21_mix001.wav", "resource fork")
    text_writer(starss_dir / "metadata_dev" / ".DS_Store" / "x.csv", "")
    assert len(scan_dcase("starss23", starss_dir)) == 4


def test_tau2019_folds(tmp_path, foa_writer, text_writer):
    root = tmp_path / "tau2019"
    head = "sound_event_recording,start_time,end_time,ele,azi,dist\n"
    for split in (1, 2, 3, 4):
        stem = f"split{split}_ir{split % 5}_ov1_{split}"
        foa_writer(root / "foa_dev" / f"{stem}.wav", seconds=0.2, sr=48000)
        text_writer(root / "metadata_dev" / f"{stem}.csv", head + "speech,0.0,0.1,0,0,1\n")
    recs = scan_dcase("tau2019", root)
    assert [(r.fold, r.room, r.split) for r in recs] == [(1, 1, "test"), (2, 2, "val"), (3, 3, "train"), (4, 4, "train")]
    assert [r.fold for r in select_split(recs, "train", folds=(1, 2))] == [1, 2]


def test_tau2020_folds(tmp_path, foa_writer, text_writer):
    root = tmp_path / "tau2020"
    for fold in range(1, 7):
        stem = f"fold{fold}_room1_mix001_ov1"
        foa_writer(root / "foa_dev" / f"{stem}.wav", seconds=0.2)
        text_writer(root / "metadata_dev" / f"{stem}.csv", "0,1,0,0,0\n")
    recs = scan_dcase("tau2020", root)
    assert {r.fold: r.split for r in recs} == {1: "test", 2: "val", 3: "train", 4: "train", 5: "train", 6: "train"}


def test_tau2021_split_folders(tmp_path, foa_writer, text_writer):
    root = tmp_path / "tau2021"
    for folder, fold in (("dev-train", 1), ("dev-val", 5), ("dev-test", 6)):
        stem = f"fold{fold}_room1_mix001"
        foa_writer(root / "foa_dev" / folder / f"{stem}.wav", seconds=0.2)
        text_writer(root / "metadata_dev" / folder / f"{stem}.csv", "0,1,0,0,0\n")
    assert {r.split_folder: r.split for r in scan_dcase("tau2021", root)} == {
        "dev-train": "train", "dev-val": "val", "dev-test": "test"}


def test_parse_file_id():
    assert parse_file_id("fold3_room21_mix001") == (3, 21)
    assert parse_file_id("split1_ir0_ov1_7") == (1, 0)
    assert parse_file_id("fold1_room2_mix010_ov2") == (1, 2)
    assert parse_file_id("mix001") == (None, None)


def test_audio_without_metadata(starss_dir, foa_writer):
    foa_writer(starss_dir / "foa_dev" / "dev-test-tau" / "fold4_room2_mix009.wav", seconds=0.2)
    with pytest.raises(DatasetLayoutError, match=r"1 audio file\(s\) have no metadata.*fold4_room2_mix009.wav"):
        scan_dcase("starss23", starss_dir)


def test_metadata_without_audio(starss_dir, text_writer):
    text_writer(starss_dir / "metadata_dev" / "dev-test-tau" / "fold4_room2_mix009.csv", "0,1,0,0,0\n")
    with pytest.raises(DatasetLayoutError, match=r"1 metadata file\(s\) have no audio.*fold4_room2_mix009.csv"):
        scan_dcase("starss23", starss_dir)


def test_eval_metadata_when_present_must_pair(starss_dir, text_writer):
    text_writer(starss_dir / "metadata_eval" / "mix001.csv", "0,1,0,0,0\n")
    recs = scan_dcase("starss23", starss_dir)
    assert [r.labeled for r in recs if r.split == "eval"] == [True]
    text_writer(starss_dir / "metadata_eval" / "mix002.csv", "0,1,0,0,0\n")
    with pytest.raises(DatasetLayoutError, match="mix002.csv"):
        scan_dcase("starss23", starss_dir)


def test_wrong_channel_count(starss_dir, foa_writer):
    foa_writer(starss_dir / "foa_dev" / "dev-train-sony" / "fold3_room21_mix001.wav", seconds=0.2, channels=2)
    with pytest.raises(DatasetLayoutError, match=r"not 4-channel 24000 Hz.*fold3_room21_mix001.wav \(2 ch, 24000 Hz\)"):
        scan_dcase("starss23", starss_dir)


def test_wrong_sample_rate(starss_dir, foa_writer):
    foa_writer(starss_dir / "foa_dev" / "dev-train-sony" / "fold3_room21_mix001.wav", seconds=0.2, sr=48000)
    with pytest.raises(DatasetLayoutError, match=r"\(4 ch, 48000 Hz\)"):
        scan_dcase("starss23", starss_dir)


def test_empty_folder(tmp_path):
    (tmp_path / "foa_dev").mkdir()
    (tmp_path / "metadata_dev").mkdir()
    with pytest.raises(DatasetLayoutError, match="No audio files"):
        scan_dcase("tau2021", tmp_path)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError, match="has neither foa_dev/ nor foa_eval/"):
        scan_dcase("tau2021", empty)


def test_unknown_name_and_missing_dir(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'dcase2024'"):
        scan_dcase("dcase2024", tmp_path)
    with pytest.raises(FileNotFoundError, match="Data folder not found"):
        scan_dcase("starss23", tmp_path / "missing")


def test_missing_metadata_folder(tmp_path, foa_writer):
    foa_writer(tmp_path / "foa_dev" / "dev-train" / "fold1_room1_mix001.wav", seconds=0.2)
    with pytest.raises(DatasetLayoutError, match="Metadata folder .*metadata_dev is missing"):
        scan_dcase("tau2021", tmp_path)


def test_bad_split_name(starss_dir):
    with pytest.raises(ValueError, match="split must be one of"):
        select_split(scan_dcase("starss23", starss_dir), "training")
