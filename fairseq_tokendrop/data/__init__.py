"""The data paths inside fairseq: pre-masked datasets and WordPiece dictionaries (the file readers are tokendrop_readers)."""
