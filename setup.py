from setuptools import find_packages, setup

# Console commands, named the way fairseq names its own (fairseq-train, fairseq-preprocess):
# fairseq-tokendrop-NAME runs fairseq_tokendrop.ROOM.MODULE:main; scripts/MODULE.py is the same from a
# checkout. commands/ are what users run on their data; research/ are the benchmark, plots, GPU check
# and demo corpus and task, whose plotting needs the "research" extra.
COMMANDS = {
    "prepare-corpus": "commands.prepare_corpus",
    "convert-premasked": "commands.convert_premasked",
    "verify-checksums": "commands.verify_checksums",
    "eval-mlm-accuracy": "commands.eval_mlm_accuracy",
    "export": "commands.export_checkpoint",
    "import-hf": "commands.import_hf",
    "import-sctd": "commands.import_sctd",
    "import-tf": "commands.import_tf",
    "finetune-glue": "commands.finetune_glue",
    "inspect": "commands.inspect_dropping",
    "stdlib-corpus": "research.make_stdlib_corpus",
    "rotten-tomatoes": "research.make_rotten_tomatoes",
    "benchmark": "research.benchmark",
    "compare-runs": "research.compare_runs",
    "checkpointing-cost": "research.checkpointing_cost",
    "tokenizer-speed": "research.tokenizer_speed",
}

# The lowest torch whose APIs the code calls (tests/test_house.py checks each against this bound):
# torch.serialization.get_unsafe_globals_in_checkpoint came in 2.5, add_safe_globals in 2.4.
TORCH_MIN = "2.5"

setup(
    name="fairseq_tokendrop",
    version="0.1.0",
    description="Token-dropping (Hou et al. 2022) and ScTD (Zhong et al. 2023) RoBERTa pretraining as a fairseq plugin",
    license="MIT",  # as fairseq's; the text is LICENSE, which the wheel carries
    license_files=["LICENSE"],
    packages=find_packages(include=["fairseq_tokendrop", "fairseq_tokendrop.*", "tokendrop_readers"]),
    # ve-fairseq 0.12.3 is fairseq main of mid-2025 (the plugin calls main's MaskedLMTask._regular_dataset,
    # which the last release, 0.12.2, lacks; 0.12.2 also cannot import on Python >= 3.11, fairseq issue
    # 5012), published as cp311 and cp312 wheels only.
    python_requires=">=3.11,<3.13",
    install_requires=[
        "ve-fairseq==0.12.3",
        f"torch>={TORCH_MIN}",
        "numpy",
        "sentencepiece",
        "tensorboard",
    ],
    entry_points={
        "console_scripts": [f"fairseq-tokendrop-{name} = fairseq_tokendrop.{module}:main"
                            for name, module in COMMANDS.items()],
    },
    extras_require={
        # Pre-masked MLPerf TFRecords and academic-budget-bert/BiGS HDF5 shards; raw text in Parquet shards
        # and Zstandard-compressed JSON lines (FineWeb's and most recent corpora's files).
        "data": ["tfrecord", "h5py", "pyarrow", "zstandard"],
        # Export to and import from Hugging Face transformers (tokenizers comes with it: it also splits text
        # with a WordPiece vocab.txt for fine-tuning; protobuf reads the sentencepiece model a tokenizer.json
        # is built from).
        "hf": ["transformers", "safetensors", "protobuf"],
        # The research tools' plots (compare_runs' curves, Agg backend, no display).
        "research": ["matplotlib"],
        # scikit-learn and scipy: the independent computations the GLUE metrics and the random draws are tested
        # against (fairseq brings both too); pytest-xdist: tests/run.sh shares the suite among TEST_WORKERS processes
        "test": ["pytest", "pytest-xdist", "tfrecord", "h5py", "pyarrow", "zstandard", "transformers", "safetensors", "protobuf", "matplotlib",
                 "scikit-learn", "scipy"],
    },
)
