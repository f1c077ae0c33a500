"""datasets integration: load_dcase (in memory and streaming), Parquet conversion round trip, Hub push boundary."""

import importlib.util
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import soundfile

from at2seld.data import MetadataRow, convert_to_parquet, decode_audio, example_rows, load_dcase, push_to_hub

ROOT = Path(__file__).resolve().parents[2]


def _expected_audio(path):
    return soundfile.read(str(path), dtype="float32", always_2d=True)[0]


def test_load_dcase_in_memory(starss_dir, tmp_path):
    ds = load_dcase("starss23", starss_dir, split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 2
    ex = ds[0]
    assert (ex["file_id"], ex["split"], ex["fold"], ex["room"], ex["labeled"]) == ("fold3_room21_mix001", "train", 3, 21, True)
    assert ex["frame"] == [0, 1, 1] and ex["class_index"] == [0, 0, 0] and ex["source_id"] == [0, 0, 1]
    assert ex["azimuth"] == [30.0, 32.0, -90.0] and ex["distance"] == pytest.approx([1.5, 1.5, 2.0])
    assert example_rows(ex)[2] == MetadataRow(1, 0, 1, -90.0, 0.0, 2.0)
    audio, sr = decode_audio(ex)
    wav = starss_dir / "foa_dev/dev-train-sony/fold3_room21_mix001.wav"
    assert sr == 24000 and audio.shape == (24000, 4) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, _expected_audio(wav))


def test_load_dcase_cache_sees_edited_metadata(starss_dir, tmp_path):
    cache = str(tmp_path / "cache")
    assert load_dcase("starss23", starss_dir, split="test", cache_dir=cache)[0]["frame"] == [5]
    csv = starss_dir / "metadata_dev/dev-test-sony/fold4_room23_mix001.csv"
    csv.write_text("6,6,0,-45,5,300\n7,6,0,-45,5,300\n")
    assert load_dcase("starss23", starss_dir, split="test", cache_dir=cache)[0]["frame"] == [6, 7]


def test_load_dcase_streaming_and_eval(starss_dir):
    it = load_dcase("starss23", starss_dir, split="eval", streaming=True)
    (ex,) = list(it)
    assert ex["file_id"] == "mix001" and ex["labeled"] is False and ex["frame"] == [] and ex["fold"] is None
    assert decode_audio(ex)[0].shape == (12000, 4)


def test_load_dcase_decode_option(starss_dir, tmp_path):
    wav = starss_dir / "foa_dev/dev-test-sony/fold4_room23_mix001.wav"
    ds = load_dcase("starss23", starss_dir, split="test", decode=True, cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(ds[0]["audio"]["array"], _expected_audio(wav))
    assert ds[0]["audio"]["sampling_rate"] == 24000 and ds[0]["frame"] == [5]
    ex = next(iter(load_dcase("starss23", starss_dir, split="test", decode=True, streaming=True)))
    np.testing.assert_array_equal(ex["audio"]["array"], _expected_audio(wav))
    np.testing.assert_array_equal(decode_audio(ex)[0], _expected_audio(wav))


def test_load_dcase_empty_split_is_explained(starss_dir):
    with pytest.raises(ValueError, match=r"No tau2021 recordings|No starss23 recordings in split"):
        load_dcase("starss23", starss_dir, split="train", folds=(9,))


def test_decode_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="was the data folder moved"):
        decode_audio({"audio": {"bytes": None, "path": str(tmp_path / "gone.wav")}, "file_id": "x"})
    with pytest.raises(TypeError, match="Cannot decode audio"):
        decode_audio({"audio": 3})


def test_convert_parquet_roundtrip(starss_dir, tmp_path):
    import datasets

    out = tmp_path / "hub"
    written = convert_to_parquet("starss23", starss_dir, out)
    assert sorted(written) == ["eval", "test", "train"]
    card = (out / "README.md").read_text()
    assert "configs:" in card and "path: data/train-*.parquet" in card and "Water tap, faucet" in card
    files = {s: str(out / "data" / f"{s}-*.parquet") for s in written}
    dd = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c"))
    assert dd["train"].num_rows == 2 and dd["test"].num_rows == 1 and dd["eval"].num_rows == 1
    assert isinstance(dd["train"].features["audio"], datasets.Audio)
    ex = dd["train"][0]
    assert ex["file_id"] == "fold3_room21_mix001" and ex["frame"] == [0, 1, 1]
    audio, _sr = decode_audio(ex)  # FLAC bytes, lossless for the 16-bit source
    np.testing.assert_array_equal(audio, _expected_audio(starss_dir / "foa_dev/dev-train-sony/fold3_room21_mix001.wav"))
    stream = datasets.load_dataset("parquet", data_files=files, streaming=True)
    assert next(iter(stream["test"]))["file_id"] == "fold4_room23_mix001"


def test_convert_shards_by_size(starss_dir, tmp_path):
    written = convert_to_parquet("starss23", starss_dir, tmp_path / "hub", max_shard_bytes=1)
    assert [Path(p).name for p in written["train"]] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "hub_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_script_and_push_boundary(starss_dir, tmp_path, capsys):
    script = _load_script("convert_dcase")
    api = mock.MagicMock()
    out = tmp_path / "hub"
    script.main([str(starss_dir), str(out), "--dataset", "starss23", "--push-to-hub", "me/starss23-foa", "--private"],
                api=api)
    api.create_repo.assert_called_once_with(repo_id="me/starss23-foa", repo_type="dataset", private=True, exist_ok=True)
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs["folder_path"] == str(out) and kwargs["repo_id"] == "me/starss23-foa" and kwargs["repo_type"] == "dataset"
    assert "https://huggingface.co/datasets/me/starss23-foa" in capsys.readouterr().out


def test_push_refuses_unconverted_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the conversion first"):
        push_to_hub(tmp_path, "me/x", api=mock.MagicMock())


def test_convert_script_rejects_unknown_dataset(tmp_path):
    script = _load_script("convert_dcase")
    with pytest.raises(SystemExit):
        script.main([str(tmp_path), str(tmp_path / "o"), "--dataset", "dcase1999"])
