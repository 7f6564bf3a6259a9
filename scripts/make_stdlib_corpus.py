#!/usr/bin/env python
from fairseq_tokendrop.research.make_stdlib_corpus import main

raise SystemExit(main())
