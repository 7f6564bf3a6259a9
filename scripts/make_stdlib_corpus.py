#!/usr/bin/env python
from fairseq_tokendrop.cli.make_stdlib_corpus import main

raise SystemExit(main())
