"""Training windows: random chunks on label-frame boundaries with their labels, full-length evaluation batches."""

import numpy as np
import pytest
import torch

from at2seld import AT2SELDFeatureExtractor
from at2seld.data import (
    FOARecordingDataset,
    MetadataRow,
    SELDCollator,
    decode_audio,
    load_dcase,
    scan_dcase,
    select_split,
)
from at2seld.data.windows import cut_chunk, random_chunk

R = MetadataRow


@pytest.fixture(scope="module")
def fe():
    return AT2SELDFeatureExtractor(backbone_type="none")


def test_cut_chunk_rebases_frames():
    audio = np.arange(24000 * 2, dtype=np.float32)[:, None].repeat(4, 1)
    rows = [R(3, 1, 0, 10.0, 0.0, None), R(5, 2, 0, 20.0, 0.0, None), R(15, 1, 0, 30.0, 0.0, None)]
    piece, kept = cut_chunk(audio, 24000, rows, start_frame=4, chunk_frames=10)
    assert piece.shape == (24000, 4) and piece[0, 0] == 4 * 2400
    assert kept == [R(1, 2, 0, 20.0, 0.0, None)]


def test_random_chunk_uses_given_generator():
    a = [random_chunk(100, 50, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1 and 0 <= a[0] <= 50
    assert random_chunk(30, 50, np.random.default_rng(0)) == 0  # shorter than a chunk: start at 0


def test_train_chunks_hold_their_labels(fe):
    sr = 24000
    audio = np.zeros((sr * 3, 4), np.float32)  # 30 label frames
    rows = [R(f, 2, 0, 90.0, 0.0, None) for f in range(30)]  # class 2 at azimuth 90 deg (y axis) in every frame
    rows.append(R(12, 0, 0, 0.0, 90.0, 1.0))
    collate = SELDCollator(fe, num_classes=13, chunk_length_s=1.0, seed=3)
    examples = [{"audio": audio, "sampling_rate": sr, "rows": rows, "file_id": "a"}] * 4
    batch = collate(examples)
    assert batch["labels"].shape == (4, 10, 3, 6) and batch["labels"].dtype == torch.float32
    assert batch["frame_mask"].shape == (4, 10) and bool(batch["frame_mask"].all())
    assert batch["spatial_features"].shape[:3] == (4, 13, 50)
    lab = batch["labels"]
    # every frame: the class-2 source on some track, active, pointing at +y
    active2 = (lab[..., 0] == 1) & (lab[..., 1] == 2)
    assert bool(active2.any(-1).all())
    torch.testing.assert_close(lab[active2][:, 2:5], torch.tensor([[0.0, 1.0, 0.0]]).expand(40, 3), atol=1e-6, rtol=0)
    # the one-frame zenith event lands exactly where the chunk's start puts frame 12
    starts = [random_chunk(30, 10, g) for g in [np.random.default_rng(3)] for _ in range(4)]
    for i, s in enumerate(starts):
        has = bool(((lab[i, :, :, 1] == 0) & (lab[i, :, :, 0] == 1)).any())
        assert has == (s <= 12 < s + 10)
        if has:
            frame = int(((lab[i, :, :, 1] == 0) & (lab[i, :, :, 0] == 1)).any(-1).nonzero()[0])
            assert frame == 12 - s


def test_eval_is_full_length_and_padded(fe, starss_dir):
    recs = scan_dcase("starss23", starss_dir)
    ds = FOARecordingDataset(select_split(recs, "train"))
    items = [ds[0], ds[1]]
    items[1] = {**items[1], "audio": decode_audio(items[1])[0][:12000]}  # 0.5 s: 5 frames
    batch = SELDCollator(fe, num_classes=13, train=False)(items)
    assert batch["labels"].shape == (2, 10, 3, 6)
    assert batch["frame_mask"].sum(1).tolist() == [10, 5]
    assert not batch["labels"][1, 5:].any()
    # recording 0: frame 1 holds two class-0 sources (30 deg and -90 deg) on two tracks
    lab = batch["labels"][0, 1]
    assert lab[:, 0].tolist() == [1.0, 1.0, 0.0] and lab[:2, 1].tolist() == [0.0, 0.0]
    assert batch["file_id"] == ["fold3_room21_mix001", "fold3_room4_mix002"]


def test_collator_on_load_dcase_examples(fe, starss_dir, tmp_path):
    ds = load_dcase("starss23", starss_dir, split="train", cache_dir=str(tmp_path / "c"))
    batch = SELDCollator(fe, num_classes=13, chunk_length_s=0.5, seed=0)([ds[0], ds[1]])
    assert batch["labels"].shape == (2, 5, 3, 6)


def test_tau2019_48k_chunks_are_resampled(fe):
    audio = np.zeros((48000 * 2, 4), np.float32)
    rows = [MetadataRow(f, 5, 0, 40.0, -10.0, 2.0) for f in range(20)]
    batch = SELDCollator(fe, num_classes=11, chunk_length_s=1.0, seed=0)(
        [{"audio": audio, "sampling_rate": 48000, "rows": rows}])
    assert batch["labels"].shape == (1, 10, 3, 6) and batch["num_label_frames"].tolist() == [10]
    assert bool((batch["labels"][0, :, 0, 1] == 5).all()) and bool((batch["labels"][0, :, 0, 5] == 2.0).all())


def test_collator_rejects_bad_chunk_and_mixed_rates(fe):
    with pytest.raises(ValueError, match="multiple of the 0.1 s label frame"):
        SELDCollator(fe, 13, chunk_length_s=0.25)
    c = SELDCollator(fe, 13, train=False)
    a = {"audio": np.zeros((4800, 4), np.float32), "sampling_rate": 24000, "rows": []}
    b = {"audio": np.zeros((9600, 4), np.float32), "sampling_rate": 48000, "rows": []}
    with pytest.raises(ValueError, match="share one sampling rate"):
        c([a, b])


def test_collator_draws_different_chunks_in_each_dataloader_worker():
    """Workers get copies of the collator: each must draw its own chunk positions (seeded per worker and epoch)."""
    import torch

    from at2seld.data import SELDCollator

    class StartProbe(SELDCollator):
        """Returns the first sample of each cut chunk (the audio is a ramp, so that is the chunk start)."""

        def __call__(self, examples):
            self._reseed_for_worker()
            return [float(self._prepare(ex)[0][0, 0]) for ex in examples]

    ramp = np.arange(60 * 2400, dtype=np.float32)
    example = {"audio": np.stack([ramp] * 4, axis=1), "sampling_rate": 24000, "rows": [], "file_id": "x"}
    probe = StartProbe(None, 13, chunk_length_s=1.0, seed=3, label_encoder=lambda *a: None)
    loader = torch.utils.data.DataLoader([example] * 8, batch_size=1, num_workers=2, collate_fn=probe)
    starts = [batch[0] for batch in loader]
    # 8 draws from 51 possible starts: two workers replaying one generator would give 4 repeated pairs
    assert len(set(starts)) >= 6, starts


def test_training_chunk_read_from_file_equals_chunk_cut_from_decoded_audio(tmp_path):
    """The file path reads only the chunk; it must give the same audio and rows as cutting the decoded file."""
    import soundfile as sf

    from at2seld.data import SELDCollator

    ramp = (np.arange(3 * 24000, dtype=np.float32) / 1e5)[:, None] * np.ones((1, 4), np.float32)
    path = tmp_path / "fold1_room1_mix001.wav"
    sf.write(path, ramp, 24000, subtype="FLOAT")
    rows = [MetadataRow(f, 1, 0, 10.0, 0.0, None) for f in range(0, 30, 3)]
    from_file = SELDCollator(None, 13, chunk_length_s=1.0, seed=5)._prepare(
        {"audio": str(path), "rows": rows, "file_id": "x"})
    from_array = SELDCollator(None, 13, chunk_length_s=1.0, seed=5)._prepare(
        {"audio": ramp, "sampling_rate": 24000, "rows": rows, "file_id": "x"})
    np.testing.assert_array_equal(from_file[0], from_array[0])
    assert from_file[1:] == from_array[1:]
    assert from_file[0].shape == (24000, 4)


def test_cached_feature_chunks_are_slices_of_whole_file_features(tmp_path):
    import soundfile as sf
    import torch

    from at2seld import AT2SELDFeatureExtractor
    from at2seld.data import CachedChunkCollator, CachedFeatureDataset
    from at2seld.feature_extraction_at2seld import foa_encode

    rng = np.random.default_rng(0)
    long = foa_encode(rng.standard_normal(3 * 24000).astype(np.float32) * 0.1, 30, 0).T
    short = foa_encode(rng.standard_normal(12000).astype(np.float32) * 0.1, -60, 0).T
    examples = []
    for name, audio, rows in [("a", long, [MetadataRow(f, 2, 0, 30.0, 0.0, None) for f in range(5, 25)]),
                              ("b", short, [MetadataRow(f, 4, 0, -60.0, 0.0, None) for f in range(0, 5)])]:
        path = tmp_path / f"{name}.wav"
        sf.write(path, audio, 24000, subtype="FLOAT")
        examples.append({"audio": str(path), "rows": rows, "file_id": name})
    fe = AT2SELDFeatureExtractor(backbone_type="ast")
    cached = CachedFeatureDataset(examples, fe)
    collator = CachedChunkCollator(cached, num_classes=13, chunk_length_s=1.0, seed=1)
    batch = collator([cached[0], cached[1]])
    assert batch["spatial_features"].shape == (2, 13, 50, 64) and batch["backbone_values"].shape == (2, 100, 128)
    assert batch["frame_mask"].sum(1).tolist() == [10, 5] and batch["num_label_frames"].tolist() == [10, 5]
    whole = fe(long, sampling_rate=24000)
    # find the chunk start from the labels' first active frame: events run frames 5..24 of recording a
    start = int(np.argmax([torch.equal(batch["spatial_features"][0], whole["spatial_features"][0, :, s * 5:(s + 10) * 5])
                           for s in range(21)]))
    torch.testing.assert_close(batch["spatial_features"][0], whole["spatial_features"][0, :, start * 5:(start + 10) * 5])
    torch.testing.assert_close(batch["backbone_values"][0], whole["backbone_values"][0, start * 10:(start + 10) * 10])
    active = batch["labels"][0, :, :, 0].sum(-1).numpy()
    expected = np.array([1.0 if 5 <= start + t < 25 else 0.0 for t in range(10)])
    np.testing.assert_array_equal(active, expected)
    # the short recording: whole file (5 frames), padded, masked, its 5 labelled frames active with class 4
    assert batch["labels"][1, :5, 0, 0].tolist() == [1.0] * 5 and batch["labels"][1, :5, 0, 1].tolist() == [4.0] * 5
    assert not batch["labels"][1, 5:].any()
