"""Class lists (sizes and baseline index orders) and the class-mapping table."""

import pytest

from at2seld.data import CLASS_NAMES, MetadataRow, class_mapping, map_classes, num_classes, unmapped_classes
from at2seld.data.classes import CLASS_CONCEPTS


def test_class_counts_and_anchor_indices():
    assert {d: num_classes(d) for d in CLASS_NAMES} == {
        "tau2019": 11, "tau2020": 14, "tau2021": 12, "starss22": 13, "starss23": 13, "synthetic": 10}
    # index orders of the DCASE baselines
    assert CLASS_NAMES["tau2019"][0] == "knock" and CLASS_NAMES["tau2019"][5] == "speech"
    assert CLASS_NAMES["tau2019"][10] == "laughter"
    assert CLASS_NAMES["tau2020"][4] == "engine" and CLASS_NAMES["tau2020"][13] == "piano"
    assert CLASS_NAMES["tau2021"][4] == "female_scream" and CLASS_NAMES["tau2021"][11] == "piano"
    assert CLASS_NAMES["starss23"][0].startswith("Female speech") and CLASS_NAMES["starss23"][12] == "Knock"
    for d in CLASS_NAMES:
        assert len(CLASS_CONCEPTS[d]) == len(CLASS_NAMES[d])


def test_mapping_by_concept_and_parent():
    m = class_mapping("tau2021", "starss23")
    assert m == {5: 0, 6: 6, 7: 12, 9: 1, 10: 3, 11: 9}  # speech f/m, footsteps, knock, phone, piano->instrument
    assert class_mapping("tau2020", "tau2019") == {6: 5, 9: 0, 11: 5, 12: 3}  # female/male speech -> speech
    assert class_mapping("tau2019", "starss23") == {0: 12, 3: 3, 9: 7, 10: 4}  # doorslam -> door; speech ambiguous
    assert "speech" in unmapped_classes("tau2019", "starss23")
    assert class_mapping("starss23", "starss22") == {i: i for i in range(13)}


def test_map_classes_rewrites_and_drops_with_warning():
    rows = [MetadataRow(0, 7, 0, 10.0, 0.0, None), MetadataRow(1, 0, 0, 20.0, 0.0, None)]  # knock, alarm (2021)
    with pytest.warns(UserWarning, match="dropped 1 row"):
        out = map_classes(rows, "tau2021", "starss23")
    assert out == [MetadataRow(0, 12, 0, 10.0, 0.0, None)]
    with pytest.raises(ValueError, match=r"Class 0 \('alarm'\) of tau2021 has no counterpart in starss23"):
        map_classes(rows, "tau2021", "starss23", drop_unmapped=False)
    assert map_classes([(3, 7, 1, 0.0, 0.0)], "tau2021", "tau2020") == [(3, 9, 1, 0.0, 0.0)]


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown data set"):
        class_mapping("tau2019", "audioset")
