from setuptools import find_packages, setup

# Console commands, named the way fairseq names its own (fairseq-train, fairseq-preprocess):
# fairseq-tokendrop-NAME runs fairseq_tokendrop.cli.MODULE:main; scripts/MODULE.py is the same from a checkout.
COMMANDS = {
    "prepare-corpus": "prepare_corpus",
    "stdlib-corpus": "make_stdlib_corpus",
    "convert-premasked": "convert_premasked",
    "verify-checksums": "verify_checksums",
    "eval-mlm-accuracy": "eval_mlm_accuracy",
    "export": "export_checkpoint",
    "import-hf": "import_hf",
    "import-sctd": "import_sctd",
    "benchmark": "benchmark",
    "compare-runs": "compare_runs",
}

setup(
    name="fairseq_tokendrop",
    version="0.1.0",
    description="Token-dropping (Hou et al. 2022) and ScTD (Zhong et al. 2023) RoBERTa pretraining as a fairseq plugin",
    packages=find_packages(include=["fairseq_tokendrop", "fairseq_tokendrop.*"]),
    python_requires=">=3.8",
    install_requires=[
        # fairseq 0.12.2, the last official release, cannot import on Python >= 3.11
        # (dataclass mutable defaults, fairseq issue 5012); ve-fairseq 0.12.3 is fairseq
        # main of mid-2025 with that fix, published as cp311/cp312 wheels.
        "fairseq==0.12.2; python_version < '3.11'",
        "ve-fairseq==0.12.3; python_version >= '3.11'",
        "torch>=1.13",
        "numpy",
        "sentencepiece",
        "tensorboard",
        "matplotlib",  # compare_runs' curves (Agg backend, no display)
    ],
    entry_points={
        "console_scripts": [f"fairseq-tokendrop-{name} = fairseq_tokendrop.cli.{module}:main"
                            for name, module in COMMANDS.items()],
    },
    extras_require={
        # Pre-masked MLPerf TFRecords and academic-budget-bert/BiGS HDF5 shards.
        "data": ["tfrecord", "h5py"],
        # Export to and import from Hugging Face transformers.
        "hf": ["transformers", "safetensors"],
        "test": ["pytest", "tfrecord", "h5py", "transformers", "safetensors"],
    },
)
