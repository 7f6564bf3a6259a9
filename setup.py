from setuptools import find_packages, setup

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
    ],
    extras_require={
        # Pre-masked MLPerf TFRecords and academic-budget-bert/BiGS HDF5 shards.
        "data": ["tfrecord", "h5py"],
        # Export to and import from Hugging Face transformers.
        "hf": ["transformers", "safetensors"],
        "test": ["pytest", "tfrecord", "h5py", "transformers", "safetensors"],
    },
)
