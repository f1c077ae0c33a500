"""`save_pretrained` writes remote code that loads without the at2seld package (how Hub users get the model)."""

import json
import os
import subprocess
import sys
import textwrap

import torch

import at2seld
from at2seld import AT2SELDConfig, AT2SELDForSoundEventLocalization

# Runs in a fresh interpreter: the editable install's import hook and every path into the repository are removed
# before anything else is imported, so `at2seld` cannot be found and the model must come from the saved folder.
CHILD = textwrap.dedent(
    """
    import importlib.util, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "") + repr(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h)]
    # the repository itself (and anything in it but the virtual environment) leaves sys.path
    sys.path[:] = [p for p in sys.path if p and p != REPO and not (p.startswith(REPO + "/") and "/.venv/" not in p + "/")]
    sys.path_importer_cache.clear()
    assert importlib.util.find_spec("at2seld") is None, "at2seld is still importable"

    import torch
    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(1)  # as for the reference outputs: bit-exact comparisons need the same reduction order

    for folder in FOLDERS:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert "at2seld" not in sys.modules
        data = torch.load(folder + "/io.pt")
        with torch.no_grad():
            out = model(data["spatial_features"], data.get("backbone_values"), labels=data["labels"])
        assert torch.equal(out.sed_logits, data["sed_logits"]), "sed_logits differ"
        assert torch.equal(out.doa, data["doa"]), "doa differ"
        assert torch.equal(out.loss, data["loss"]), "loss differs"
        print("REMOTE_OK", type(model).__name__, config.backbone_type)
    """
)


def save_with_reference_outputs(folder, backbone):
    """Save a tiny model and, next to it, inputs and the outputs it gives here."""
    torch.manual_seed(0)
    model = AT2SELDForSoundEventLocalization(AT2SELDConfig.tiny(backbone_type=backbone, fusion="early+late")).eval()
    model.save_pretrained(folder)
    names = sorted(os.listdir(folder))
    for needed in ("configuration_at2seld.py", "modeling_at2seld.py", "losses_at2seld.py", "beats_at2seld.py",
                   "model.safetensors", "config.json"):
        assert needed in names, names
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_at2seld.AT2SELDConfig",
        "AutoModel": "modeling_at2seld.AT2SELDForSoundEventLocalization",
    }
    g = torch.Generator().manual_seed(1)
    spatial = torch.randn(2, 13, 50, 64, generator=g)
    fbank = torch.randn(2, 100, 128, generator=g)
    labels = torch.zeros(2, 10, 3, 6)
    labels[:, :, 0, 0], labels[:, :, 0, 1], labels[:, :, 0, 2] = 1, 4, 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = model(spatial, fbank, labels=labels)
    finally:
        torch.set_num_threads(threads)
    torch.save({"spatial_features": spatial, "backbone_values": fbank, "labels": labels,
                "sed_logits": out.sed_logits, "doa": out.doa, "loss": out.loss}, folder / "io.pt")


def test_saved_models_load_as_remote_code_without_the_package(tmp_path):
    folders = []
    for backbone in ("ast", "beats"):
        folder = tmp_path / backbone
        save_with_reference_outputs(folder, backbone)
        folders.append(str(folder))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(at2seld.__file__)))
    script = f"REPO = {repo!r}\nFOLDERS = {folders!r}\n" + CHILD
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("REMOTE_OK AT2SELDForSoundEventLocalization") == 2, result.stdout
    assert "REMOTE_OK AT2SELDForSoundEventLocalization beats" in result.stdout
