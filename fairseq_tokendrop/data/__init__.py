"""The data paths: pre-masked records and datasets, WordPiece dictionaries, the MLPerf evaluation schedule."""
