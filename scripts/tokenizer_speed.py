#!/usr/bin/env python
from fairseq_tokendrop.research.tokenizer_speed import main

raise SystemExit(main())
