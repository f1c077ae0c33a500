"""Fine-tune, calibrate, test and save an AT2SELD model.

    python hub_scripts/train.py --dataset starss23 --data_dir /data/STARSS23 --output_dir runs/starss23 \
        --backbone_name_or_path MIT/ast-finetuned-audioset-10-10-0.4593 --num_train_epochs 50
    accelerate launch hub_scripts/train.py ... --bf16      # multi-GPU / multi-node through Accelerate

All options: `python hub_scripts/train.py --help` (model, data, decoding and transformers TrainingArguments).
"""

from at2seld.training import main

if __name__ == "__main__":
    main()
